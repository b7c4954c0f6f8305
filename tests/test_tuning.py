"""Tuning: optuna TPE trials that never see the test split, retraining on the whole training split,
the Vertex HyperparameterTuningJob spec, and the device passed through to XGBoost."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.cloud.aiplatform_v1.types import HyperparameterTuningJob
from typer.testing import CliRunner

from predictor.model import LeadScoringModel
from training.cli import app
from training.synth import generate_leads, write_table
from training.tracking import RunStore
from training.train import TrainConfig, XGBParams, split_rows, train
from training.tune import SEARCH_SPACE

ROWS = 3000


@pytest.fixture(scope="module")
def leads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_table(generate_leads(ROWS, seed=21), tmp_path_factory.mktemp("tune") / "leads.parquet")


@pytest.fixture(scope="module")
def tuned(leads: Path, tmp_path_factory: pytest.TempPathFactory):
    return train(TrainConfig(data=str(leads), out=tmp_path_factory.mktemp("tuned") / "model", tune_trials=4))


def test_the_test_split_never_informs_tuning(tuned, leads: Path, tmp_path: Path):
    # Scramble the targets of exactly the test rows: the trials must not change at all.
    _, test_rows = split_rows(np.arange(ROWS), 0.2, 42)
    table = pq.read_table(leads)
    target = table["conversion_probability"].to_numpy().copy()
    target[test_rows] = np.random.default_rng(0).random(len(test_rows))
    scrambled = write_table(table.set_column(table.schema.get_field_index("conversion_probability"),
                                             "conversion_probability", pa.array(target)), tmp_path / "s.parquet")
    again = train(TrainConfig(data=str(scrambled), out=tmp_path / "model", tune_trials=4))
    assert again.trials == tuned.trials
    assert again.params == tuned.params
    assert again.metrics["rmse"] != tuned.metrics["rmse"]  # the test split itself did change


def test_all_trials_are_recorded_and_the_best_is_retrained_on_the_training_split(tuned):
    assert len(tuned.trials) == 4 and all(t["state"] == "COMPLETE" for t in tuned.trials)
    assert all(set(t["params"]) == {p.name for p in SEARCH_SPACE} for t in tuned.trials)
    best = min(tuned.trials, key=lambda t: t["validation_rmse"])
    for name, value in best["params"].items():
        assert getattr(tuned.params, name) == value
    assert tuned.params.n_estimators == best["n_estimators"]
    assert LeadScoringModel.load(tuned.out).booster.num_boosted_rounds() == best["n_estimators"]
    assert tuned.rows_train == ROWS * 0.8  # the whole training split, validation rows included
    metadata = json.loads((tuned.out / "metadata.json").read_text())
    assert metadata["params"]["max_depth"] == best["params"]["max_depth"]
    assert metadata["tuning"] == {"trials": 4, "validation_rmse": best["validation_rmse"]}
    assert json.loads((tuned.out / "tuning.json").read_text())["trials"] == tuned.trials
    run = RunStore().get(tuned.run_id)
    assert run.trials == tuned.trials and run.metrics["validation_rmse"] == best["validation_rmse"]


def test_the_search_is_emitted_as_a_vertex_tuning_job(tmp_path: Path):
    out = tmp_path / "job.json"
    result = CliRunner().invoke(app, ["tuning-spec", "--image", "europe-docker.pkg.dev/p/r/train:1",
                                      "--data", "bq://p.crm.leads", "--trials", "30", "--parallel", "3",
                                      "--accelerator", "NVIDIA_TESLA_T4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    spec = json.loads(out.read_text())
    job = HyperparameterTuningJob.from_json(json.dumps(spec))  # the API's own message type: unknown fields fail
    assert [p.parameter_id for p in job.study_spec.parameters] == [p.name for p in SEARCH_SPACE]
    depth = next(p for p in spec["studySpec"]["parameters"] if p["parameterId"] == "max_depth")
    assert depth == {"parameterId": "max_depth", "integerValueSpec": {"minValue": "3", "maxValue": "10"},
                     "scaleType": "UNIT_LINEAR_SCALE"}
    rate = next(p for p in spec["studySpec"]["parameters"] if p["parameterId"] == "learning_rate")
    assert rate["scaleType"] == "UNIT_LOG_SCALE"
    assert spec["studySpec"]["metrics"] == [{"metricId": "rmse", "goal": "MINIMIZE"}]
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (30, 3)
    [pool] = spec["trialJobSpec"]["workerPoolSpecs"]
    assert pool["machineSpec"] == {"machineType": "n1-standard-8", "acceleratorType": "NVIDIA_TESLA_T4",
                                   "acceleratorCount": 1}
    container = pool["containerSpec"]
    assert container["command"] == ["leadscore"] and container["imageUri"] == "europe-docker.pkg.dev/p/r/train:1"
    assert container["args"][:3] == ["train", "--data", "bq://p.crm.leads"] and "cuda" in container["args"]


def test_a_trial_command_line_is_accepted_by_leadscore_train(leads: Path, tmp_path: Path):
    # Vertex AI appends --<parameterId>=<value> for every searched parameter to the trial's args.
    tuned_args = [f"--{p.name}={int(p.low) if p.integer else p.low}" for p in SEARCH_SPACE]
    result = CliRunner().invoke(app, ["train", "--data", str(leads), "--out", str(tmp_path / "trial"),
                                      "--n_estimators=20", *tuned_args, "--json"])
    assert result.exit_code == 0, result.output
    params = json.loads((tmp_path / "trial" / "metadata.json").read_text())["params"]
    assert {p.name: params[p.name] for p in SEARCH_SPACE} == {p.name: p.low for p in SEARCH_SPACE}


def test_device_cuda_is_passed_to_xgboost(leads: Path, tmp_path: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(TrainConfig(data=str(leads), out=tmp_path / "gpu",
                                   params=XGBParams(device="cuda", n_estimators=5)))
    config = json.loads(LeadScoringModel.load(result.out).booster.save_config())
    fell_back = any("Device is changed from GPU to CPU" in str(w.message) for w in caught)
    # Without a GPU (here) XGBoost says it falls back to the CPU; with one it trains on CUDA.
    assert fell_back or config["learner"]["generic_param"]["device"].startswith("cuda")
    assert json.loads((result.out / "metadata.json").read_text())["params"]["device"] == "cuda"
    assert RunStore().get(result.run_id).params["device"] == "cuda"
