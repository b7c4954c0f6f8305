"""The TOML config file: its documented example, flag overrides, and one-line errors naming the key."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

import training.config
from training.cli import app, main
from training.config import LeadscoreConfig, load_config
from training.errors import ConfigError


def test_the_documented_example_loads(tmp_path: Path):
    example = training.config.__doc__.split("::", 1)[1]
    path = tmp_path / "leadscore.toml"
    path.write_text("\n".join(line[4:] for line in example.splitlines()))
    config = load_config(path)
    assert config.data.source == "bq://my-project.crm.leads"
    assert config.data.window.start == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert config.tracking.project == "my-project"
    run = config.train_config(tmp_path / "model")
    assert run.query.sample_percent == 10 and run.exclude == ["Tags", "Lead Quality", "Last Notable Activity"]
    assert run.params.device == "cpu" and run.params.max_depth == 6


def test_flags_override_the_file(synth_parquet: Path, tmp_path: Path):
    config = tmp_path / "leadscore.toml"
    config.write_text(f'[data]\nsource = "{synth_parquet}"\n\n[train.hyperparameters]\nmax_depth = 3\n'
                      'n_estimators = 30\n\n[tracking]\nexperiment = "from-file"\n')
    result = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "m"),
                                      "--max-depth", "4", "--experiment", "from-flag", "--json"])
    assert result.exit_code == 0, result.output
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["params"]["max_depth"] == 4  # the flag
    assert metadata["params"]["n_estimators"] == 30  # the file
    assert metadata["data"]["source"] == str(synth_parquet)
    run = json.loads(CliRunner().invoke(app, ["runs", "show", metadata["run_id"], "--json"]).stdout)
    assert run["experiment"] == "from-flag"


@pytest.mark.parametrize(("text", "message"), [
    ("[train.hyperparameters]\nmax_dept = 3\n", "[train.hyperparameters]: unknown key(s) max_dept"),
    ("[train]\ntune_trials = \"3\"\n", "[train] tune_trials: expected int, got '3'"),
    ("[data]\nexclude = [1]\n", "[data] exclude: expected str, got 1"),
    ("[tracking]\nbackend = \"mlflow\"\n", "[tracking]: tracking backend 'mlflow': use one of local, vertex"),
    ("[data.window]\ncolumn = \"ts\"\nstart = \"yesterday\"\n", "[data.window] start: expected a date-time"),
    ("[data\n", "not valid TOML"),
])
def test_bad_files_are_one_line_errors_naming_the_key(text: str, message: str, tmp_path: Path, monkeypatch, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    monkeypatch.setattr(sys, "argv", ["leadscore", "train", "--config", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: {info.value}"


def test_no_source_anywhere_is_an_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="no data source"):
        LeadscoreConfig().train_config(tmp_path)
