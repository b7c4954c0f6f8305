"""Evaluation: RMSE interval, binned confusion matrix (KFP shape), calibration, feature importance."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl

from predictor.artifacts import verify
from predictor.model import LeadScoringModel
from training.evaluate import (
    PLAIN_BOOTSTRAP_MAX_ROWS,
    bootstrap_rmse_interval,
    calibration_table,
    confusion_matrix,
    feature_importance,
)


def _noisy(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.beta(2, 5, rows)
    return truth, truth + rng.normal(0, 0.1, rows)


def test_the_rmse_interval_is_a_bootstrap_interval():
    truth, pred = _noisy(5000)
    rmse = float(np.sqrt(np.mean((pred - truth) ** 2)))
    interval = bootstrap_rmse_interval(truth, pred)
    assert interval["method"] == "percentile bootstrap"
    assert interval["low"] < rmse < interval["high"]
    # The half-width of a 95 % interval is about 1.96 standard errors of the RMSE (delta method).
    errors = (pred - truth) ** 2
    standard_error = errors.std() / np.sqrt(len(errors)) / (2 * rmse)
    assert (interval["high"] - interval["low"]) / 2 == pytest.approx(1.96 * standard_error, rel=0.15)


def test_the_bag_of_little_bootstraps_matches_the_plain_bootstrap():
    truth, pred = _noisy(PLAIN_BOOTSTRAP_MAX_ROWS + 30_000, seed=1)
    little = bootstrap_rmse_interval(truth, pred)
    assert little["method"] == "bag of little bootstraps"
    errors = (pred - truth) ** 2
    rng = np.random.default_rng(2)
    plain = np.sqrt([errors[rng.integers(0, len(errors), len(errors))].mean() for _ in range(400)])
    low, high = np.percentile(plain, [2.5, 97.5])
    width = high - low
    # Both are estimates (the reference has 400 resamples): they agree to a small share of the width.
    assert abs(little["low"] - low) < 0.15 * width and abs(little["high"] - high) < 0.15 * width


def test_confusion_bins_come_from_the_truth_for_both_sides():
    truth, _ = _noisy(2000)
    shifted = truth + 0.3  # a model that is off by a constant
    matrix = confusion_matrix(truth, shifted)
    counts = np.array([r["row"] for r in matrix["rows"]])
    assert counts.shape == (5, 5) and counts.sum() == 2000
    assert np.array_equal(counts.sum(axis=1), np.bincount(np.searchsorted(matrix["boundaries"], truth, "right")))
    assert np.trace(counts) < 0.5 * 2000  # the offset shows
    # The seed binned each side on its own quantiles: the same model looked perfect.
    seed_style = pd.crosstab(pd.qcut(truth, 5, labels=False), pd.qcut(shifted, 5, labels=False)).to_numpy()
    assert np.trace(seed_style) == 2000


def test_the_confusion_matrix_has_kfp_classification_metrics_shape():
    truth, pred = _noisy(1000)
    matrix = confusion_matrix(truth, pred)
    kfp_metrics = dsl.ClassificationMetrics(name="evaluation", metadata={})
    kfp_metrics.log_confusion_matrix([s["displayName"] for s in matrix["annotationSpecs"]],
                                     [r["row"] for r in matrix["rows"]])
    assert kfp_metrics.metadata["confusionMatrix"] == {k: matrix[k] for k in ("annotationSpecs", "rows")}


def test_a_binary_truth_gets_one_bin_per_value():
    truth = np.array([0.0, 1.0, 1.0, 0.0, 1.0])
    matrix = confusion_matrix(truth, np.array([0.2, 0.7, 0.4, 0.6, 0.9]))
    assert [s["displayName"] for s in matrix["annotationSpecs"]] == ["0", "1"]
    assert matrix["boundaries"] == [0.5]
    assert [r["row"] for r in matrix["rows"]] == [[1, 1], [1, 2]]


def test_calibration_compares_mean_prediction_and_mean_outcome_per_decile():
    rng = np.random.default_rng(4)
    pred = rng.random(10_000)
    truth = (rng.random(10_000) < pred).astype(float)  # calibrated by construction
    table = calibration_table(truth, pred)
    assert len(table) == 10 and sum(b["rows"] for b in table) == 10_000
    assert all(b["min_predicted"] <= b["mean_predicted"] <= b["max_predicted"] for b in table)
    assert all(abs(b["mean_actual"] - b["mean_predicted"]) < 0.05 for b in table)
    assert [b["mean_predicted"] for b in table] == sorted(b["mean_predicted"] for b in table)


def test_importance_is_total_gain_summed_per_raw_feature(synth_model: Path):
    model = LeadScoringModel.load(synth_model)
    importance = feature_importance(model.booster, model.transform)
    assert set(importance) == set(model.transform.feature_names)
    scores = model.booster.get_score(importance_type="total_gain")
    assert sum(v["total_gain"] for v in importance.values()) == pytest.approx(sum(scores.values()))
    sources = model.transform.output_sources()
    industry = sum(g for k, g in scores.items() if sources[int(k[1:])] == "industry")
    assert importance["industry"]["total_gain"] == pytest.approx(industry)
    assert sum(v["share"] for v in importance.values()) == pytest.approx(1.0)
    assert list(importance) == sorted(importance, key=lambda f: -importance[f]["total_gain"])


def test_the_artifact_records_the_evaluation(synth_model: Path):
    manifest = verify(synth_model)
    assert "evaluation.json" in manifest["files"]
    evaluation = json.loads((synth_model / "evaluation.json").read_text())
    metrics = json.loads((synth_model / "metrics.json").read_text())
    assert metrics["rmse_ci95_low"] < metrics["rmse"] < metrics["rmse_ci95_high"]
    assert evaluation["rmse_interval"]["low"] == metrics["rmse_ci95_low"]
    assert sum(sum(r["row"]) for r in evaluation["confusion_matrix"]["rows"]) == metrics["rows"]
    assert sum(b["rows"] for b in evaluation["calibration"]) == metrics["rows"]
    assert set(evaluation["feature_importance"]) == set(json.loads((synth_model / "metadata.json").read_text())["features"])
