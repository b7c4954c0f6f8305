"""Training end to end, on real and synthetic data, through the library and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from predictor.artifacts import verify
from predictor.model import LeadScoringModel
from tests.conftest import XEDU_CSV, XEDU_LEAKAGE, XEDU_TARGET
from training import export
from training.cli import app, main
from training.errors import OutputError
from training.sources import read_table
from training.synth import EXAMPLE_LEAD
from training.train import TrainConfig, XGBParams, train


def test_xeducation_end_to_end(xedu_model: Path):
    metrics = json.loads((xedu_model / "metrics.json").read_text())
    metadata = json.loads((xedu_model / "metadata.json").read_text())
    # A model without the leakage columns still separates converters from the rest.
    assert metrics["r2"] > 0.35 and metrics["rmse"] < 0.36
    assert metrics["rows"] == 1848  # 20 % of 9,237 leads, as scikit-learn rounds the test share up
    assert metadata["dropped_columns"]["Prospect ID"].startswith("ID-like")
    assert metadata["dropped_columns"]["Lead Number"].startswith("ID-like")
    assert all(metadata["dropped_columns"][c] == "excluded" for c in XEDU_LEAKAGE)
    # Real rows from the CSV score through the serving path.
    raw = read_table(XEDU_CSV).iloc[:50]
    model = LeadScoringModel.load(xedu_model)
    records = json.loads(raw[model.transform.feature_names].to_json(orient="records"))
    predictions = model.predict_instances(records)
    truth = raw[XEDU_TARGET].to_numpy()
    assert np.all(np.isfinite(predictions))
    assert predictions[truth == 1].mean() > predictions[truth == 0].mean() + 0.2


def test_synthetic_signal_is_learned(synth_model: Path):
    metrics = json.loads((synth_model / "metrics.json").read_text())
    assert metrics["r2"] > 0.6


def test_hyperparameters_are_the_seeds(synth_model: Path):
    params = json.loads((synth_model / "metadata.json").read_text())["params"]
    assert {
        "objective": "reg:squarederror", "n_estimators": 100, "max_depth": 6, "learning_rate": 0.1,
        "subsample": 0.8, "colsample_bytree": 0.8, "seed": 42,
    }.items() <= params.items()
    booster = LeadScoringModel.load(synth_model).booster
    assert booster.num_boosted_rounds() == 100


def test_held_out_scores_are_the_served_scores(synth_run):
    """Evaluation scores the held-out rows with the loaded artifacts' evaluator, bit for bit."""
    result = synth_run()
    model = LeadScoringModel.load(result.out)
    served = model.predict_matrix(model.transform.transform_columns(
        {name: result.holdout[name].to_numpy() for name in model.transform.feature_names}))
    np.testing.assert_array_equal(result.holdout_predictions, served)


def test_training_is_deterministic(synth_parquet: Path, tmp_path: Path):
    a = train(TrainConfig(data=str(synth_parquet), out=tmp_path / "a"))
    b = train(TrainConfig(data=str(synth_parquet), out=tmp_path / "b"))
    assert a.metrics == b.metrics


def test_cli_train_then_predict(synth_parquet: Path, tmp_path: Path):
    out = tmp_path / "cli-model"
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--data", str(synth_parquet), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout[result.stdout.index("{"):])["metrics"]["rmse"] > 0
    verify(out)
    result = runner.invoke(app, ["predict", "--artifacts", str(out), "--instances", "-"],
                           input=json.dumps(EXAMPLE_LEAD))
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["predictions"]) == 1
    inline = runner.invoke(app, ["predict", "--artifacts", str(out), "--instances", json.dumps([EXAMPLE_LEAD])])
    assert inline.exit_code == 0, inline.output
    assert json.loads(inline.stdout) == json.loads(result.stdout)


def test_predict_names_an_unreadable_instances_file(synth_model: Path, tmp_path: Path, monkeypatch, capsys):
    missing = tmp_path / "lead.json"
    monkeypatch.setattr(sys, "argv", ["leadscore", "predict", "--model", str(synth_model), "--instances", str(missing)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert capsys.readouterr().err.strip() == f"error: {missing}: cannot read it (No such file or directory)"


@pytest.mark.parametrize("occupant", ["file", "project"])
def test_an_output_path_that_is_not_a_model_is_never_replaced(occupant, synth_parquet: Path, tmp_path: Path,
                                                            monkeypatch, capsys):
    out = tmp_path / "out"
    if occupant == "file":
        out.write_text("notes")
    else:
        (out / "src").mkdir(parents=True)
        (out / "src" / "main.py").write_text("print('mine')")
    before = sorted((p.relative_to(tmp_path), p.is_file() and p.read_text()) for p in tmp_path.rglob("*"))
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "state"))
    monkeypatch.setattr(sys, "argv", ["leadscore", "train", "--data", str(synth_parquet), "--out", str(out)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    assert "choose another output path" in capsys.readouterr().err
    after = sorted((p.relative_to(tmp_path), p.is_file() and p.read_text()) for p in tmp_path.rglob("*"))
    assert after == before  # untouched, and nothing read or recorded: no state directory either


def test_an_empty_directory_or_a_model_directory_is_written(synth_parquet: Path, tmp_path: Path):
    (tmp_path / "empty").mkdir()
    params = XGBParams(n_estimators=3)
    for out in (tmp_path / "empty", tmp_path / "empty"):  # the second run replaces the first's model
        train(TrainConfig(data=str(synth_parquet), out=out, params=params))
        verify(out)


def test_training_reports_each_tree_and_trains_the_same(synth_parquet: Path, tmp_path: Path):
    params = XGBParams(n_estimators=7)
    messages: list[str] = []
    reported = train(TrainConfig(data=str(synth_parquet), out=tmp_path / "a", params=params), progress=messages.append)
    quiet = train(TrainConfig(data=str(synth_parquet), out=tmp_path / "b", params=params))
    trees = [m.rsplit(": tree ", 1)[1] for m in messages if ": tree " in m]
    assert trees == [f"{i}/7" for i in range(1, 8)]
    assert all(m.startswith("training XGBoost (7 trees, depth 6) on ") for m in messages if ": tree " in m)
    assert reported.metrics == quiet.metrics


def test_failed_write_keeps_previous_artifacts(synth_model: Path, synth_parquet: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "model"
    train(TrainConfig(data=str(synth_parquet), out=out))
    before = verify(out)

    def crash(directory):
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_manifest", crash)
    with pytest.raises(OutputError, match="disk full"):
        train(TrainConfig(data=str(synth_parquet), out=out, params=XGBParams(max_depth=3)))
    assert verify(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging directory left behind
