"""The numpy tree evaluator gives XGBoost's predictions, and steps aside where it cannot."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb

from predictor.artifacts import MANIFEST_FILE, MODEL_FILE, TRANSFORM_FILE, read_json, write_json, write_manifest
from predictor.forest import CHUNK_ROWS, BitmaskForest, ForestUnsupported
from predictor.model import LeadScoringModel
from predictor.predictor import TREE_EVALUATOR_ENV, TREE_EVALUATORS, LeadScoringPredictor
from predictor.transform import BOOSTER_MISSING
from tests.conftest import XEDU_CSV, XEDU_LEAKAGE
from training.sources import read_table
from training.synth import TARGET, generate_leads

# float32 leaves summed in another order than XGBoost's: a few float32 ulps of a score in [0, 1].
TOLERANCE = 2e-6


def _xgboost(model: LeadScoringModel, matrix: np.ndarray) -> np.ndarray:
    return model.booster.inplace_predict(matrix, missing=model.transform.booster_missing, validate_features=False)


def _compile(booster: xgb.Booster, model: LeadScoringModel) -> BitmaskForest:
    transform = model.transform
    return BitmaskForest.from_booster(booster, transform.n_outputs, range(len(transform.numeric)),
                                      transform.one_hot_blocks())


def test_equals_xgboost_on_the_real_leads(xedu_model: Path):
    model = LeadScoringModel.load(xedu_model)
    assert model.forest is not None
    frame = read_table(XEDU_CSV)
    features = model.transform.feature_names
    records = frame[features].astype(object).where(frame[features].notna(), None).to_dict("records")
    matrix = model.transform.encode_instances(records)
    assert len(records) > 4 * CHUNK_ROWS  # several passes
    actual, expected = model.predict_matrix(matrix), _xgboost(model, matrix)
    assert actual.shape == expected.shape and actual.dtype == np.float32
    assert np.max(np.abs(actual - expected)) <= TOLERANCE
    assert np.std(actual) > 0.1  # a real spread of scores, not a constant that happens to match


def test_missing_unknown_and_zero_values_take_xgboost_paths(synth_model: Path):
    model = LeadScoringModel.load(synth_model)
    leads = generate_leads(600, seed=3).drop_columns(["lead_id", TARGET]).to_pylist()
    for lead in leads[:100]:
        lead["industry"] = "a category never seen in training"
    for lead in leads[100:200]:
        lead["pages_visited"] = None  # imputed with the median
    for lead in leads[200:300]:
        lead.clear()  # everything missing
    numeric = {f.name: f for f in model.transform.numeric}
    for lead in leads[300:400]:
        lead["time_on_site"] = numeric["time_on_site"].mean  # scales to exactly 0.0: a value
    matrix = model.transform.encode_instances(leads)
    assert (matrix[300:400, model.transform.feature_names.index("time_on_site")] == 0.0).all()
    assert np.max(np.abs(model.predict_matrix(matrix) - _xgboost(model, matrix))) <= TOLERANCE


def test_a_model_trained_reading_zeros_as_missing(synth_model: Path, tmp_path: Path):
    # Artifacts written before the dense training matrix record "booster_missing": 0.0.
    old_dir = tmp_path / "zeros-missing"
    shutil.copytree(synth_model, old_dir)
    model = LeadScoringModel.load(synth_model)
    leads = generate_leads(2000, seed=4).drop_columns(["lead_id", TARGET]).to_pylist()
    matrix = model.transform.encode_instances(leads)
    target = matrix[:, 0] * 0.1 + (matrix[:, -1] == 0.0) * 0.5  # zeros matter to the fit
    booster = xgb.train({"max_depth": 6}, xgb.DMatrix(matrix, target, missing=0.0), num_boost_round=20)
    booster.save_model(old_dir / MODEL_FILE)
    write_json(old_dir / TRANSFORM_FILE, {**read_json(old_dir / TRANSFORM_FILE), "booster_missing": 0.0})
    write_manifest(old_dir, read_json(old_dir / MANIFEST_FILE)["versions"])
    old = LeadScoringModel.load(old_dir)
    assert old.transform.zero_is_missing and old.forest is not None
    expected = booster.inplace_predict(matrix, missing=0.0)
    assert np.max(np.abs(old.predict_matrix(matrix) - expected)) <= TOLERANCE
    # Reading those zeros as values would have scored differently.
    assert np.max(np.abs(booster.inplace_predict(matrix, missing=np.nan) - expected)) > 0.01


@pytest.mark.parametrize("params", [
    {"max_depth": 2, "n_estimators": 30},
    {"max_depth": 6, "n_estimators": 100, "learning_rate": 0.3},
    {"objective": "reg:absoluteerror", "n_estimators": 40},
])
def test_equals_xgboost_for_other_hyperparameters(synth_run, params):
    model = LeadScoringModel.load(synth_run(**params).out)
    assert model.forest is not None
    leads = generate_leads(700, seed=11).drop_columns(["lead_id", TARGET]).to_pylist()
    matrix = model.transform.encode_instances(leads)
    assert np.max(np.abs(model.predict_matrix(matrix) - _xgboost(model, matrix))) <= TOLERANCE


def test_a_tree_that_is_a_single_leaf(synth_model: Path):
    model = LeadScoringModel.load(synth_model)
    rng = np.random.default_rng(0)
    matrix = model.transform.encode_instances(generate_leads(200, seed=5).drop_columns(["lead_id", TARGET]).to_pylist())
    # A huge min_child_weight forbids every split: each tree is its root leaf.
    booster = xgb.train({"min_child_weight": 1e9, "base_score": 0.3}, xgb.DMatrix(matrix, rng.random(200),
                        missing=BOOSTER_MISSING), num_boost_round=3)
    forest = _compile(booster, model)
    expected = booster.inplace_predict(matrix, missing=BOOSTER_MISSING)
    assert np.max(np.abs(forest.predict(matrix) - expected)) <= TOLERANCE


def _booster(model: LeadScoringModel, **params) -> xgb.Booster:
    matrix = model.transform.encode_instances(generate_leads(2000, seed=9).drop_columns(["lead_id", TARGET]).to_pylist())
    target = np.random.default_rng(1).random(len(matrix))
    return xgb.train(params, xgb.DMatrix(matrix, target, missing=BOOSTER_MISSING), num_boost_round=5)


@pytest.mark.parametrize("params, reason", [
    ({"max_depth": 8, "min_child_weight": 0}, "leaves"),
    ({"objective": "reg:logistic"}, "objective"),
    ({"booster": "gblinear"}, "gbtree"),
])
def test_unsupported_boosters_are_refused(synth_model: Path, params, reason):
    model = LeadScoringModel.load(synth_model)
    with pytest.raises(ForestUnsupported, match=reason):
        _compile(_booster(model, **params), model)


def test_a_booster_trained_on_other_columns_is_refused(synth_model: Path):
    model = LeadScoringModel.load(synth_model)
    with pytest.raises(ForestUnsupported, match="columns"):
        BitmaskForest.from_booster(model.booster, model.transform.n_outputs + 1, range(1), [])


def test_an_artifact_with_an_unsupported_booster_is_scored_by_xgboost(synth_model: Path, tmp_path: Path):
    deep_dir = tmp_path / "deep"
    shutil.copytree(synth_model, deep_dir)
    _booster(LeadScoringModel.load(synth_model), max_depth=8, min_child_weight=0).save_model(deep_dir / MODEL_FILE)
    write_manifest(deep_dir, read_json(deep_dir / MANIFEST_FILE)["versions"])
    model = LeadScoringModel.load(deep_dir)
    matrix = model.transform.encode_instances([{"pages_visited": 3}, {"industry": "retail"}, {}])
    assert model.forest is None
    np.testing.assert_array_equal(model.predict_matrix(matrix), _xgboost(model, matrix))


def test_the_predictor_can_be_told_to_use_xgboost(synth_model: Path, monkeypatch: pytest.MonkeyPatch):
    body = {"instances": generate_leads(50, seed=2).drop_columns(["lead_id", TARGET]).to_pylist()}
    scores = {}
    for evaluator in TREE_EVALUATORS:
        monkeypatch.setenv(TREE_EVALUATOR_ENV, evaluator)
        predictor = LeadScoringPredictor()
        predictor.load(str(synth_model))
        assert (predictor.model_.forest is None) == (evaluator == "xgboost")
        scores[evaluator] = np.array(predictor.postprocess(predictor.predict(predictor.preprocess(body)))["predictions"])
    assert np.max(np.abs(scores["numpy"] - scores["xgboost"])) <= TOLERANCE
    monkeypatch.setenv(TREE_EVALUATOR_ENV, "treelite")
    with pytest.raises(ValueError, match="LEADSCORE_TREE_EVALUATOR"):
        LeadScoringPredictor().load(str(synth_model))
