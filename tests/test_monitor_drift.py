"""Drift and performance measurements against a model's training profile, on data with known shifts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictor.artifacts import read_json
from predictor.model import LeadScoringModel
from training.errors import MonitorError
from training.monitor.check import score_window
from training.monitor.drift import (
    DEFAULT_THRESHOLD,
    JENSEN_SHANNON,
    L_INFINITY,
    DriftThresholds,
    compute_drift,
    js_divergence,
    linf_distance,
)
from training.monitor.performance import compute_performance, join_labels
from training.monitor.window import window_from_log_rows
from training.synth import generate_leads


@pytest.fixture(scope="module")
def baseline(synth_model: Path):
    """The synthetic model, its profile and its evaluation."""
    return LeadScoringModel.load(synth_model), read_json(synth_model / "profile.json"), read_json(
        synth_model / "metrics.json")


def fresh_leads(rows: int, seed: int) -> pd.DataFrame:
    """New leads from the training distribution (the model was trained on seed 7)."""
    return generate_leads(rows, seed=seed).to_pandas()


def shift(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A known shift in one numeric and one categorical feature: bigger companies, more education leads."""
    shifted = frame.copy()
    shifted["company_size"] = shifted["company_size"] * 20
    rows = np.random.default_rng(seed).random(len(shifted)) < 0.6
    shifted.loc[rows, "industry"] = "education"
    return shifted


def drift_of(baseline, frame: pd.DataFrame, thresholds: DriftThresholds | None = None):
    model, profile, _ = baseline
    return compute_drift(profile, model.transform, frame, score_window(model, frame), thresholds)


def test_js_divergence_is_the_base_2_divergence_not_scipys_distance():
    p, q = np.array([10.0, 30.0, 60.0]), np.array([40.0, 40.0, 20.0])
    pn, qn = p / p.sum(), q / q.sum()
    m = (pn + qn) / 2
    expected = 0.5 * np.sum(pn * np.log2(pn / m)) + 0.5 * np.sum(qn * np.log2(qn / m))
    assert js_divergence(p, q) == pytest.approx(expected, rel=1e-12)
    assert js_divergence(p, p) == pytest.approx(0.0, abs=1e-12)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint: the maximum in base 2


def test_linf_distance_counts_absent_categories_as_zero():
    assert linf_distance({"a": 0.7, "b": 0.3}, {"a": 0.5, "b": 0.2, "c": 0.3}) == pytest.approx(0.3)
    assert linf_distance({"a": 1.0}, {"a": 1.0}) == 0.0


def test_a_known_shift_is_detected_and_attributed(baseline):
    result = drift_of(baseline, shift(fresh_leads(10_000, seed=11)))
    assert result.drifted_features == ["company_size", "industry"]
    by_name = {f.feature: f for f in result.features}
    assert by_name["company_size"].metric == JENSEN_SHANNON and by_name["industry"].metric == L_INFINITY
    assert by_name["company_size"].value > DEFAULT_THRESHOLD and by_name["industry"].value > DEFAULT_THRESHOLD
    # The serving histogram moved into the top training bin; the education share rose to ~64 %.
    assert by_name["company_size"].histogram.serving[-1] > 0.5
    education = by_name["industry"].histogram.labels.index("education")
    assert by_name["industry"].histogram.serving[education] == pytest.approx(0.64, abs=0.03)
    assert result.alert and not result.issue_features


def test_fresh_samples_raise_no_alert_in_95_of_100_repetitions(baseline):
    """Statistical honesty: 100 windows of 10k leads from the training distribution, default thresholds."""
    model, profile, _ = baseline
    alerts, largest = 0, {}
    for seed in range(1000, 1100):
        frame = fresh_leads(10_000, seed=seed)
        result = compute_drift(profile, model.transform, frame, score_window(model, frame))
        alerts += result.alert
        for f in [*result.features, result.prediction]:
            largest[f.feature] = max(largest.get(f.feature, 0.0), f.value)
    assert alerts <= 5, largest
    # Not a vacuous pass: the metrics are computed and small, far below the threshold.
    assert set(largest) == {*model.transform.feature_names, "prediction"}
    assert 0 < max(largest.values()) < DEFAULT_THRESHOLD / 3


def test_the_seed_threshold_is_selectable_and_per_feature_thresholds_apply(baseline):
    frame = fresh_leads(10_000, seed=12)
    frame.loc[frame.index[:1_200], "campaign_source"] = "referral"  # a mild shift: ~12 points
    default = drift_of(baseline, frame)
    seed = drift_of(baseline, frame, DriftThresholds(default=0.05))
    lenient = drift_of(baseline, frame, DriftThresholds(default=0.05, per_feature={"campaign_source": 0.5}))
    assert default.drifted_features == []
    assert seed.drifted_features == ["campaign_source"]
    assert lenient.drifted_features == []
    assert {f.feature: f.threshold for f in lenient.features}["campaign_source"] == 0.5


def test_missing_values_placeholders_and_unseen_categories(baseline):
    frame = fresh_leads(2_000, seed=13)
    frame["industry"] = frame["industry"].astype(object)
    frame.loc[frame.index[:400], "industry"] = "Select"  # a form's "not chosen": missing, as in training
    frame.loc[frame.index[400:600], "campaign_source"] = "tiktok"  # never seen in training
    frame = frame.drop(columns=["time_on_site"])  # a field the client stopped sending
    by_name = {f.feature: f for f in drift_of(baseline, frame).features}
    assert by_name["industry"].missing_rate_serving == pytest.approx(0.2 + 0.8 * 0.03, abs=0.015)
    assert by_name["industry"].unseen_rate == 0.0
    assert by_name["campaign_source"].unseen_rate == pytest.approx(0.1)
    assert by_name["campaign_source"].unseen_categories == ["tiktok"]
    assert any("unseen" in issue for issue in by_name["campaign_source"].issues)
    assert by_name["time_on_site"].missing_rate_serving == 1.0 and by_name["time_on_site"].value is None
    assert any("missing in 100.0%" in issue for issue in by_name["time_on_site"].issues)
    assert not by_name["time_on_site"].drifted


def test_drift_result_json_has_metric_value_threshold_drifted(baseline):
    payload = json.loads(json.dumps(drift_of(baseline, shift(fresh_leads(3_000, seed=14))).to_dict()))
    for feature in payload["features"] + [payload["prediction"]]:
        assert {"feature", "metric", "value", "threshold", "drifted"} <= set(feature)
        assert isinstance(feature["drifted"], bool) and math.isfinite(feature["value"])
    assert payload["drifted_features"] == ["company_size", "industry"]


def test_log_rows_from_bigquery_and_local_sinks_read_alike():
    request = {"instances": [{"lead_id": "a", "pages_visited": 3}, {"lead_id": "b", "pages_visited": 9}]}
    response = {"predictions": [0.25, {"score": 0.75, "attributions": {}}], "model_version": "1.2.0"}
    local = {"endpoint": "local", "deployed_model_id": "lead-scoring@1.2.0", "logging_time": "2026-11-01T10:00:00+00:00",
             "request_id": "f00", "request_payload": [json.dumps(request)], "response_payload": [json.dumps(response)]}
    # BigQuery hands back a NUMERIC request id, a datetime and numpy arrays for REPEATED columns.
    bigquery = {**local, "request_id": 123456789, "logging_time": pd.Timestamp("2026-11-01T10:00:00Z").to_pydatetime(),
                "request_payload": np.array(local["request_payload"], dtype=object),
                "response_payload": np.array(local["response_payload"], dtype=object)}
    a, b = window_from_log_rows([local], "local"), window_from_log_rows([bigquery], "bq")
    for window in (a, b):
        assert window.frame["lead_id"].tolist() == ["a", "b"]
        assert window.frame["logged_prediction"].tolist() == [0.25, 0.75]
        assert window.model_versions == {"1.2.0": 2}
    assert a.frame["logging_time"].tolist() == b.frame["logging_time"].tolist()


def test_performance_is_compared_with_the_evaluation(baseline):
    model, _, metrics = baseline
    leads = fresh_leads(2_000, seed=15)
    predictions = score_window(model, leads)
    labels = leads[["lead_id", "conversion_probability"]].sample(frac=1.0, random_state=0)  # order must not matter
    y, p = join_labels(leads, predictions, labels, "lead_id", "conversion_probability")
    healthy = compute_performance(y, p, metrics)
    assert healthy.rows == 2_000 and not healthy.degraded
    assert abs(healthy.degradation["rmse"]) < 0.1
    noisy = labels.assign(conversion_probability=np.random.default_rng(1).permutation(labels["conversion_probability"]))
    degraded = compute_performance(*join_labels(leads, predictions, noisy, "lead_id", "conversion_probability"), metrics)
    assert degraded.degraded and degraded.degradation["rmse"] > 0.5
    few = compute_performance(y[:50], p[:50] + 0.3, metrics)
    assert few.degradation["rmse"] > 0.1 and not few.degraded  # too few labelled leads to alert


def test_labels_without_the_id_column_are_a_clear_error(baseline):
    model, _, _ = baseline
    leads = fresh_leads(10, seed=16)
    with pytest.raises(MonitorError, match="no 'lead_id' column"):
        join_labels(leads, score_window(model, leads), leads[["conversion_probability"]], "lead_id",
                    "conversion_probability")


def test_real_x_education_leads_against_their_own_profile(xedu_model: Path):
    from tests.conftest import XEDU_CSV
    from training.sources import read_table

    model, profile = LeadScoringModel.load(xedu_model), read_json(xedu_model / "profile.json")
    frame = read_table(XEDU_CSV)
    result = compute_drift(profile, model.transform, frame, score_window(model, frame))
    assert not result.alert, [(f.feature, f.value, f.issues) for f in result.features if f.alerting]
    by_name = {f.feature: f for f in result.features}
    assert len(by_name) == len(model.transform.feature_names)
    assert by_name["Do Not Email"].kind == "boolean" and by_name["Do Not Email"].histogram.labels[:2] == ["no", "yes"]
    # The form's placeholder 'Select' is missing on both sides, as training treated it.
    heard = by_name["How did you hear about X Education"]
    assert heard.missing_rate_serving > 0.7
    assert heard.missing_rate_serving == pytest.approx(heard.missing_rate_training, abs=0.02)
    assert "Select" not in heard.histogram.labels
