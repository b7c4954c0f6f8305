"""``leadscore monitor``: the command end to end, alerts to a real HTTP receiver, actions, history, report."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from training.cli import app
from training.monitor.actions import RETRAIN_COMMAND_ENV, default_retrain_command
from training.monitor.history import History
from training.synth import generate_leads

FEATURES = ["company_size", "pages_visited", "time_on_site", "prior_contacts", "industry", "product_interest",
            "campaign_source"]


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own state directory (history, retrain logs)."""
    home = tmp_path / "home"
    monkeypatch.setenv("LEADSCORE_HOME", str(home))
    monkeypatch.delenv("LEADSCORE_ALERT_WEBHOOK", raising=False)
    return home


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A fresh window from the training distribution and one with a known shift, with their labels."""
    folder = tmp_path_factory.mktemp("windows")
    fresh = generate_leads(3_000, seed=21).to_pandas()
    shifted = fresh.copy()
    shifted["company_size"] = shifted["company_size"] * 20
    shifted.loc[np.random.default_rng(0).random(len(shifted)) < 0.6, "industry"] = "education"
    paths = {"fresh": folder / "fresh.parquet", "shifted": folder / "shifted.parquet",
             "labels": folder / "labels.csv", "bad_labels": folder / "bad_labels.csv"}
    fresh.drop(columns=["conversion_probability"]).to_parquet(paths["fresh"])
    shifted.drop(columns=["conversion_probability"]).to_parquet(paths["shifted"])
    fresh[["lead_id", "conversion_probability"]].to_csv(paths["labels"], index=False)
    wrong = fresh[["lead_id"]].assign(conversion_probability=np.random.default_rng(2).permutation(
        fresh["conversion_probability"].to_numpy()))
    wrong.to_csv(paths["bad_labels"], index=False)
    return paths


class Receiver:
    """A webhook receiver on 127.0.0.1 that records what it is sent and answers ``status``."""

    def __init__(self, status: int = 200):
        self.status = status
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.bodies.append({"content_type": self.headers.get("Content-Type"), "json": json.loads(body)})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/leadscore"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["monitor", *args], catch_exceptions=False)
    return result.exit_code, result.stdout


def test_json_output_per_feature(synth_model: Path, windows):
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["shifted"]), "--json")
    assert code == 0, out
    payload = json.loads(out)
    assert [f["feature"] for f in payload["features"]] == FEATURES
    for feature in payload["features"]:
        assert set(feature) >= {"metric", "value", "threshold", "drifted"}
        assert feature["metric"] == ("l_infinity_distance" if feature["feature"] in FEATURES[4:]
                                     else "jensen_shannon_divergence")
    assert payload["drifted_features"] == ["company_size", "industry"]
    assert payload["alert"] is True and payload["window"]["rows"] == 3_000
    assert payload["events"][0]["status"] == "recorded (no webhook)"


def test_fresh_window_table_and_seed_threshold(synth_model: Path, windows):
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]))
    assert code == 0
    assert "company_size" in out and "no drift, no data-quality issue" in out
    assert History().events() == []  # nothing alerted, nothing recorded
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]), "--threshold", "0.05",
                    "--feature-threshold", "industry=0.001", "--json")
    assert json.loads(out)["drifted_features"] == ["industry"]


def test_alert_is_posted_to_the_webhook_and_recorded(synth_model: Path, windows, receiver: Receiver):
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["shifted"]),
                    "--webhook", receiver.url)
    assert code == 0, out
    [posted] = receiver.bodies
    assert posted["content_type"] == "application/json"
    message = posted["json"]
    assert "company_size" in message["text"] and "industry" in message["text"]
    assert [block["type"] for block in message["blocks"]] == ["header", "section", "context"]
    [event] = History().events()
    assert (event.kind, event.name, event.status) == ("alert", "drift", "sent")
    assert event.evidence["delivery"]["status_code"] == 200
    assert event.evidence["drift"]["drifted_features"] == ["company_size", "industry"]
    code, out = run("history", "--json")
    assert json.loads(out)[0]["id"] == event.id


def test_a_failing_webhook_is_recorded_not_fatal(synth_model: Path, windows):
    broken = Receiver(status=500)
    try:
        code, _ = run("drift", "--model", str(synth_model), "--window", str(windows["shifted"]),
                      "--webhook", broken.url)
    finally:
        broken.close()
    assert code == 0 and len(broken.bodies) == 1
    [event] = History().events()
    assert event.status == "webhook failed" and event.evidence["delivery"]["status_code"] == 500


def test_fail_on_alert_exit_code(synth_model: Path, windows):
    code, _ = run("drift", "--model", str(synth_model), "--window", str(windows["shifted"]), "--fail-on-alert")
    assert code == 3
    code, _ = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]), "--fail-on-alert")
    assert code == 0


def test_default_retrain_command_is_the_pipeline_main_job():
    assert default_retrain_command() == [sys.executable, "-m", "training", "run"]


def test_drift_starts_retraining_with_the_evidence(synth_model: Path, windows, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch):
    # Stands in for `leadscore run` (not built yet): records how it was started.
    marker = tmp_path / "retrain-started.json"
    script = tmp_path / "fake_run.py"
    script.write_text(
        "import json, os, sys\n"
        f"open({str(marker)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], "
        "'trigger': os.environ['LEADSCORE_TRIGGER'], 'evidence': os.environ['LEADSCORE_TRIGGER_EVIDENCE']}))\n"
    )
    monkeypatch.setenv(RETRAIN_COMMAND_ENV, f"{sys.executable} {script} --data bq://p.d.leads")
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["shifted"]), "--on-drift", "retrain")
    assert code == 0, out
    deadline = time.monotonic() + 30
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = json.loads(marker.read_text())
    assert started["argv"] == ["--data", "bq://p.d.leads"] and started["trigger"] == "drift"
    evidence = json.loads(Path(started["evidence"]).read_text())
    assert evidence["drift"]["drifted_features"] == ["company_size", "industry"]
    action, alert = History().events()
    assert (action.kind, action.name, action.status) == ("action", "retrain", "started")
    assert action.evidence["alert_id"] == alert.id and action.evidence["pid"] > 0
    assert evidence["alert_id"] == alert.id


def test_no_retraining_without_drift(synth_model: Path, windows, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv(RETRAIN_COMMAND_ENV, f"{sys.executable} -c 'raise SystemExit(1)'")
    code, _ = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]), "--on-drift", "retrain")
    assert code == 0 and History().events() == []


def test_performance_with_labels(synth_model: Path, windows, receiver: Receiver):
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]), "--labels",
                    str(windows["labels"]), "--json")
    performance = json.loads(out)["performance"]
    assert performance["rows"] == 3_000 and not performance["degraded"]
    assert performance["reference"]["rmse"] == json.loads((synth_model / "metrics.json").read_text())["rmse"]
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]), "--labels",
                    str(windows["bad_labels"]), "--webhook", receiver.url)
    assert code == 0, out
    assert "RMSE" in out
    [event] = History().events()
    assert (event.name, event.status) == ("degradation", "sent")
    assert event.evidence["performance"]["degradation"]["rmse"] > 0.1
    assert "degraded" in receiver.bodies[0]["json"]["text"]


def test_errors_name_the_problem(synth_model: Path, windows, tmp_path: Path):
    from training.errors import LeadscoreError

    empty = tmp_path / "predictions"
    empty.mkdir()
    for args, needle in (
        (["--window", str(windows["fresh"]), "--on-drift", "page-someone"], "the only action is 'retrain'"),
        (["--window", str(windows["fresh"]), "--feature-threshold", "industry"], "expected FEATURE=NUMBER"),
        (["--window", str(windows["fresh"]), "--labels", str(windows["labels"]), "--id-column", "id"],
         "no 'id' column"),
    ):
        result = CliRunner().invoke(app, ["monitor", "drift", "--model", str(synth_model), *args])
        assert isinstance(result.exception, LeadscoreError) and needle in str(result.exception), result.output
    # Through the real entry point: a message and exit code 1, no traceback.
    result = subprocess.run([sys.executable, "-m", "training", "monitor", "drift", "--model", str(synth_model),
                             "--window", str(empty)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "no prediction log here" in " ".join(result.stderr.split()), result.stderr


def _chromium_layout(report: Path, tmp_path: Path) -> list[dict]:
    """Renders the report in headless Chromium and returns, per feature section, what the browser laid out."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    # A copy with a probe script: the browser measures each chart as it laid it out.
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", """<script>
      const out = [];
      for (const s of document.querySelectorAll('section.feature')) {
        const svg = s.querySelector('svg'), box = svg.getBoundingClientRect();
        const bars = [...svg.querySelectorAll('rect.bar')].filter(b => b.getBoundingClientRect().height > 0.5);
        out.push({feature: s.dataset.feature, heading: s.querySelector('h3').innerText, width: box.width,
                  height: box.height, visibleBars: bars.length, labels: svg.querySelectorAll('text').length,
                  hidden: getComputedStyle(s).display === 'none' || getComputedStyle(s).visibility === 'hidden'});
      }
      document.body.setAttribute('data-layout', JSON.stringify(out));
    </script></body>"""))
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1280,2000", "--dump-dom",
         probe.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    match = re.search(r'data-layout="([^"]*)"', result.stdout)
    assert match, result.stdout[:2000]
    return json.loads(html.unescape(match.group(1)))


def test_html_report_shows_every_feature_in_chromium(synth_model: Path, windows, tmp_path: Path):
    report = tmp_path / "drift.html"
    code, out = run("drift", "--model", str(synth_model), "--window", str(windows["shifted"]), "--labels",
                    str(windows["labels"]), "--report", str(report))
    assert code == 0, out
    text = report.read_text()
    assert not re.search(r'(src|href)="(https?:)?//', text)  # self-contained: nothing to fetch
    layout = _chromium_layout(report, tmp_path)
    assert [s["feature"] for s in layout] == [*FEATURES, "prediction"]
    for section in layout:
        assert section["heading"] == section["feature"] and not section["hidden"]
        assert section["width"] > 300 and section["height"] > 150, section
        assert section["visibleBars"] >= 2 and section["labels"] >= 3, section
    assert "2 of 7 features drifted: company_size, industry" in text
    assert "Performance on labelled leads" in text


def test_degradation_rolls_the_champion_back_through_the_registry(synth_model: Path, windows, tmp_path: Path):
    from training.registry import open_registry

    registry = open_registry()
    first = registry.promote(str(synth_model), reason="first champion").version
    retrained = tmp_path / "retrained"
    shutil.copytree(synth_model, retrained)
    second = registry.promote(str(retrained), reason="second champion").version
    assert registry.get("lead-scoring", "champion").version == second.version
    code, out = run("drift", "--model", "lead-scoring@champion", "--window", str(windows["fresh"]), "--labels",
                    str(windows["bad_labels"]), "--on-degradation", "rollback")
    assert code == 0, out
    assert f"rolled back from {second.version} to {first.version}" in " ".join(out.split())
    assert registry.get("lead-scoring", "champion").version == first.version
    action, alert = History().events()
    assert (alert.name, action.name, action.status) == ("degradation", "rollback", "done")
    assert action.evidence["alert_id"] == alert.id
    assert action.evidence["registration"]["version"]["version"] == first.version
    rollback = registry.history("lead-scoring")[-1]
    assert rollback.action == "rollback" and f"alert #{alert.id}" in rollback.reason
    # Nothing left to roll back to: the failure is recorded, the check still completes.
    code, _ = run("drift", "--model", str(synth_model), "--window", str(windows["fresh"]), "--labels",
                  str(windows["bad_labels"]), "--on-degradation", "rollback")
    assert code == 0
    latest = History().events(limit=1)[0]
    assert (latest.name, latest.status) == ("rollback", "failed")
