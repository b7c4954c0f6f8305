"""The predictor's prediction log: sampling, schema, bounded size, never blocking, the real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from predictor.prediction_log import (
    DIR_ENV,
    FILE_PREFIX,
    FILE_SUFFIX,
    LOG_COLUMNS,
    RATE_ENV,
    PredictionLogConfig,
    PredictionLogger,
)
from predictor.model import LeadScoringModel
from training.cli import app
from training.monitor.window import load_window
from training.serve import free_port
from training.synth import EXAMPLE_LEAD, generate_leads


def _lines(directory: Path) -> list[dict]:
    rows = []
    for path in sorted(directory.glob(f"{FILE_PREFIX}*{FILE_SUFFIX}*")):
        rows.extend(json.loads(line) for line in path.read_text().splitlines() if line.strip())
    return rows


def _logger(directory: Path, **overrides) -> PredictionLogger:
    config = PredictionLogConfig(directory=directory, **{"rate": 1.0, **overrides})
    return PredictionLogger(config, endpoint="local", deployed_model_id="lead-scoring@1.0.0")


def test_records_have_the_vertex_logging_columns(tmp_path: Path):
    logger = _logger(tmp_path)
    logger.log({"instances": [EXAMPLE_LEAD]}, {"predictions": [0.5], "model_version": "1.0.0"})
    logger.log({"instances": [EXAMPLE_LEAD, EXAMPLE_LEAD]}, {"predictions": [0.1, 0.2], "model_version": "1.0.0"})
    logger.close()
    rows = _lines(tmp_path)
    assert len(rows) == 2
    assert all(tuple(row) == LOG_COLUMNS for row in rows)
    # Payloads are arrays of JSON strings, as in BigQuery's REPEATED STRING columns.
    assert json.loads(rows[1]["request_payload"][0]) == {"instances": [EXAMPLE_LEAD, EXAMPLE_LEAD]}
    assert json.loads(rows[1]["response_payload"][0])["predictions"] == [0.1, 0.2]
    assert rows[0]["deployed_model_id"] == "lead-scoring@1.0.0" and rows[0]["endpoint"] == "local"
    assert rows[0]["request_id"] != rows[1]["request_id"]
    assert rows[0]["logging_time"] <= rows[1]["logging_time"]


def test_sampling_rate(tmp_path: Path):
    logger = _logger(tmp_path, rate=0.8)
    for i in range(2000):
        logger.log({"instances": [{"i": i}]}, {"predictions": [0.0]})
    logger.close()
    share = len(_lines(tmp_path)) / 2000
    assert logger.logged == len(_lines(tmp_path))
    assert 0.75 < share < 0.85  # binomial sd 0.009: 5 sd either side


def test_files_rotate_and_the_directory_stays_bounded(tmp_path: Path):
    max_bytes, keep = 4_000, 2
    old_names = [f"{FILE_PREFIX}old-host-{pid}{FILE_SUFFIX}" for pid in (101, 102, 103)]
    for age, name in enumerate(old_names, start=1):  # files left behind by earlier server processes
        (tmp_path / name).write_text("x" * 3_000 + "\n")
        os.utime(tmp_path / name, (age, age))
    logger = _logger(tmp_path, max_bytes=max_bytes, keep=keep)
    for i in range(300):
        logger.log({"instances": [{"i": i}]}, {"predictions": [0.5]})
    logger.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    total = sum(p.stat().st_size for p in tmp_path.iterdir())
    line = max(len(json.dumps(r)) + 1 for r in _lines(tmp_path))
    assert total <= (keep + 1) * max_bytes + line
    assert not set(old_names) & set(names)  # the oldest files went first
    assert any(name.endswith(f"{FILE_SUFFIX}.1") for name in names)  # this process rotated
    logged = [json.loads(r["request_payload"][0])["instances"][0]["i"] for r in _lines(tmp_path)]
    assert 299 in logged and 0 not in logged  # the newest records survive


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path):
    logger = _logger(tmp_path, queue_size=3)
    logger._handler.acquire()  # the writer thread stalls on its first record, as on a hung disk
    try:
        results: list[bool] = []
        caller = threading.Thread(
            target=lambda: results.extend(logger.log({"instances": [{}]}, {"predictions": [0.1]}) for _ in range(20))
        )
        caller.start()
        caller.join(timeout=10)
        assert not caller.is_alive(), "log() blocked while the writer was stalled"
    finally:
        logger._handler.release()
    logger.close()
    assert len(results) == 20
    assert logger.dropped >= 20 - 4  # at most 3 queued + 1 taken by the stalled writer
    assert logger.logged + logger.dropped == 20
    assert len(_lines(tmp_path)) == logger.logged


@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({DIR_ENV: "/tmp/x", RATE_ENV: "0"}, None),
    ({DIR_ENV: "/tmp/x"}, 0.8),
    ({DIR_ENV: "/tmp/x", RATE_ENV: "0.25"}, 0.25),
])
def test_config_from_env(env, expected):
    config = PredictionLogConfig.from_env(env)
    assert (config.rate if config else None) == expected


def test_bad_rate_is_refused():
    with pytest.raises(ValueError, match="between 0 and 1"):
        PredictionLogConfig.from_env({DIR_ENV: "/tmp/x", RATE_ENV: "1.5"})


def test_the_real_server_logs_what_it_answered(synth_model: Path, cpr_server, tmp_path: Path):
    log_dir = tmp_path / "predictions"
    server = cpr_server(synth_model, extra_env={DIR_ENV: str(log_dir), RATE_ENV: "1"})
    leads = generate_leads(30, seed=5).drop_columns(["conversion_probability"]).to_pylist()
    answers = []
    for start in range(0, 30, 10):
        response = server.post(json.dumps({"instances": leads[start:start + 10]}))
        assert response.status_code == 200, response.text
        answers.extend(response.json()["predictions"])
    bad = server.post(json.dumps({"instances": [EXAMPLE_LEAD | {"pages_visited": "many"}]}))
    assert bad.status_code == 400  # rejected requests are not scored, so not logged
    deadline = time.monotonic() + 20
    while len(_lines(log_dir)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    window = load_window(str(log_dir))
    assert window.requests == 3 and window.rows == 30
    assert window.frame["lead_id"].tolist() == [lead["lead_id"] for lead in leads]
    assert window.frame["logged_prediction"].tolist() == pytest.approx(answers)
    assert window.model_versions == {"unregistered": 30}
    expected = LeadScoringModel.load(synth_model).predict_instances(leads)
    assert window.frame["logged_prediction"].to_numpy() == pytest.approx(expected, abs=1e-6)
    assert httpx.get(f"{server.url}/health").status_code == 200
    assert os.listdir(log_dir)


def test_leadscore_serve_logs_into_the_state_dir_for_monitor(synth_model: Path, tmp_path: Path):
    home = tmp_path / "home"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in (DIR_ENV, RATE_ENV, "LEADSCORE_HOME")}
    server = subprocess.Popen(
        [sys.executable, "-m", "training", "--home", str(home), "serve", "--model", str(synth_model), "--port",
         str(port), "--prediction-log-rate", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        leads = generate_leads(8, seed=6).drop_columns(["conversion_probability"]).to_pylist()
        for lead in leads:
            assert httpx.post(f"{url}/predict", json={"instances": [lead]}).status_code == 200
        while len(_lines(home / "predictions")) < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0]
    assert f"logging 100% of requests to {home.absolute() / 'predictions'}" in " ".join(output.split())
    result = CliRunner().invoke(app, ["monitor", "drift", "--model", str(synth_model), "--window",
                                      str(home / "predictions"), "--json"], catch_exceptions=False)
    payload = json.loads(result.stdout)
    assert payload["window"]["rows"] == 8 and payload["window"]["requests"] == 8
