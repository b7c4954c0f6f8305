"""Validation before training: bad data stops `leadscore train` with one line, exit 1 and nothing written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import XEDU_CSV, XEDU_TARGET
from training.cli import main
from training.state import HOME_ENV
from training.tracking import RunStore


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def _leads(rows: int = 200, **columns) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"visits": rng.integers(0, 20, rows), "source": rng.choice(["ads", "mail", "web"], rows),
                          "converted": rng.random(rows)})
    return frame.assign(**columns)


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["leadscore", *argv])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _write(frame: pd.DataFrame | str, path: Path) -> Path:
    """Writes a frame as CSV or Parquet (by extension), or raw text."""
    if isinstance(frame, str):
        path.write_text(frame)
    elif path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


CASES = {
    "missing target": (lambda d: _write(_leads(), d / "a.csv"), ["--target", "won"],
                       "target column 'won' not found; columns are: visits, source, converted"),
    "non-numeric target": (lambda d: _write(_leads(converted=["hot", "cold"] * 100), d / "b.csv"), [],
                           "target 'converted' is not numeric: values such as 'cold', 'hot'"),
    "no rows": (lambda d: _write(_leads().iloc[:0], d / "c.csv"), [], "the source returned no rows"),
    "too few rows": (lambda d: _write(_leads(60), d / "d.csv"), [],
                     "only 60 labelled rows; at least 100 are needed to train and evaluate"),
    "too few labelled rows": (lambda d: _write(_leads(converted=[np.nan] * 150 + [0.5] * 50), d / "e.csv"),
                              ["--min-rows", "51"], "only 50 labelled rows; at least 51 are needed"),
    "duplicate columns": (lambda d: _write("visits,source,visits,converted\n1,a,2,0.5\n", d / "f.csv"), [],
                          "duplicate column names: visits"),
    "entirely missing feature": (lambda d: _write(_leads(notes=[None] * 200), d / "g.csv"), [],
                                 "feature 'notes' is entirely missing; exclude it or fix the source"),
    "infinite feature value": (lambda d: _write(_leads(seconds=[np.inf] + [1.5] * 199), d / "i.parquet"), [],
                               "feature 'seconds' has 1 infinite value(s); exclude it or fix the source"),
    "infinite target": (lambda d: _write(_leads(converted=[-np.inf, np.inf] + [0.5] * 198), d / "j.parquet"), [],
                        "the target column 'converted' has 2 infinite value(s)"),
    "constant target": (lambda d: _write(_leads(converted=0.3), d / "k.csv"), [],
                        "the target column 'converted' is 0.3 on every labelled row: there is nothing to learn"),
    "window with no rows": (lambda d: _write(_leads(created=pd.Timestamp("2026-01-01", tz="UTC")), d / "h.parquet"),
                            ["--window-column", "created", "--since", "2027-01-01T00:00:00+02:00"],
                            "the source returned no rows"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_data_stops_with_one_line_and_writes_nothing(case, home, tmp_path, monkeypatch, capsys):
    make, extra, message = CASES[case]
    data = make(tmp_path)
    out = tmp_path / "model"
    code, stdout, stderr = _run(["train", "--data", str(data), "--out", str(out), "--target", "converted", *extra],
                                monkeypatch, capsys)
    assert code == 1
    [line] = [l for l in stderr.splitlines() if "error" in l]
    assert line.startswith("error: ") and message in line
    assert stderr.rstrip().endswith(line)  # the error is the last line, whole
    assert not out.exists() and not list(tmp_path.glob(".model*"))
    assert RunStore().list() == []  # no run recorded either


def test_constant_id_and_excluded_columns_are_dropped_with_a_message(home, tmp_path, monkeypatch, capsys):
    rows = 200
    data = _write(_leads(rows, lead_id=[f"L{i}" for i in range(rows)], plan="basic", tags="x"), tmp_path / "l.csv")
    config = tmp_path / "leadscore.toml"
    config.write_text(f'[data]\nsource = "{data}"\ntarget = "converted"\nexclude = ["tags"]\n')
    code, stdout, stderr = _run(["train", "--config", str(config), "--out", str(tmp_path / "m")], monkeypatch, capsys)
    assert code == 0, stderr
    assert "dropped plan: constant" in stdout and "dropped tags: excluded" in stdout
    assert "dropped lead_id: ID-like" in stdout
    assert "dropping column 'plan': constant" in stderr  # logged as it happens, too
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["dropped_columns"] == {"lead_id": "ID-like (a distinct value on every row)",
                                           "plan": "constant", "tags": "excluded"}
    assert set(metadata["features"]) == {"visits", "source"}


def test_excluded_columns_from_flags_add_to_nothing_but_replace_the_config(home, tmp_path, monkeypatch, capsys):
    data = _write(_leads(tags="x", quality=["a", "b"] * 100), tmp_path / "l.csv")
    config = tmp_path / "leadscore.toml"
    config.write_text(f'[data]\nsource = "{data}"\ntarget = "converted"\nexclude = ["tags"]\n')
    code, _, stderr = _run(["train", "--config", str(config), "--exclude", "quality", "--out", str(tmp_path / "m")],
                           monkeypatch, capsys)
    assert code == 0, stderr
    dropped = json.loads((tmp_path / "m" / "metadata.json").read_text())["dropped_columns"]
    assert dropped["quality"] == "excluded" and dropped["tags"] == "constant"  # the flag replaced the file's list


def test_a_target_outside_0_1_is_a_warning(home, tmp_path, monkeypatch, capsys):
    data = _write(_leads(converted=np.linspace(-1, 5, 200)), tmp_path / "w.csv")
    code, stdout, stderr = _run(["train", "--data", str(data), "--target", "converted", "--out", str(tmp_path / "m")],
                                monkeypatch, capsys)
    assert code == 0, stderr
    assert "warning: target 'converted' ranges from -1 to 5, outside [0, 1]" in stdout
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["warnings"] == ["target 'converted' ranges from -1 to 5, outside [0, 1]: the model is meant to "
                                    "predict a conversion probability"]


def test_yes_no_and_boolean_targets_are_mapped(home, tmp_path, monkeypatch, capsys):
    frame = pd.read_csv(XEDU_CSV).iloc[:1500]
    frame[XEDU_TARGET] = frame[XEDU_TARGET].map({1: "Yes", 0: "no"})
    data = _write(frame, tmp_path / "yes_no.csv")
    code, _, stderr = _run(["train", "--data", str(data), "--target", XEDU_TARGET, "--out", str(tmp_path / "m"),
                            "--exclude", "Tags", "--json"], monkeypatch, capsys)
    assert code == 0, stderr
    metrics = json.loads((tmp_path / "m" / "metrics.json").read_text())
    assert 0 < metrics["rmse"] < 0.5 and metrics["r2"] > 0.2
