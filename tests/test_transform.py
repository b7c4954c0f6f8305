"""The numpy transform equals scikit-learn's fitted ColumnTransformer on real data."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from predictor.transform import FeatureTransform, InstanceError
from tests.conftest import XEDU_CSV, XEDU_LEAKAGE, XEDU_TARGET
from training.features import detect_features
from training.preprocess import build_column_transformer, export_transform, prepare_frame
from training.sources import read_table


@pytest.fixture(scope="module")
def xedu():
    frame = read_table(XEDU_CSV)
    spec = detect_features(frame, XEDU_TARGET, XEDU_LEAKAGE)
    prepared = prepare_frame(frame, spec)
    fit_rows, check_rows = prepared.iloc[:6000], prepared.iloc[6000:]
    column_transformer = build_column_transformer(spec).fit(fit_rows)
    transform = export_transform(column_transformer, spec)
    return frame.iloc[6000:], check_rows, column_transformer, transform, spec


def _sklearn(column_transformer, rows: pd.DataFrame) -> np.ndarray:
    matrix = column_transformer.transform(rows)
    return matrix.toarray() if hasattr(matrix, "toarray") else np.asarray(matrix)


def test_columns_path_equals_sklearn(xedu):
    _, rows, column_transformer, transform, _ = xedu
    expected = _sklearn(column_transformer, rows)
    actual = transform.transform_columns({c: rows[c].to_numpy() for c in transform.feature_names})
    assert actual.shape == expected.shape
    assert np.max(np.abs(actual - expected)) <= 1e-9


def test_request_path_equals_sklearn_on_raw_json_rows(xedu):
    raw, rows, column_transformer, transform, spec = xedu
    expected = _sklearn(column_transformer, rows)
    # What a client sends: the raw CSV values as JSON (NaN → null, booleans as true/false).
    records = json.loads(raw[spec.features].to_json(orient="records"))
    actual = transform.encode_instances(records)
    assert np.max(np.abs(actual - expected)) <= 1e-9


def test_output_names_match_sklearn(xedu):
    _, _, column_transformer, transform, _ = xedu
    sklearn_names = [n.split("__", 1)[1] for n in column_transformer.get_feature_names_out()]
    assert transform.output_names == sklearn_names


def test_json_round_trip_preserves_transform(xedu):
    _, rows, _, transform, _ = xedu
    again = FeatureTransform.from_dict(json.loads(json.dumps(transform.to_dict())))
    columns = {c: rows[c].to_numpy() for c in transform.feature_names}
    assert np.array_equal(again.transform_columns(columns), transform.transform_columns(columns))
    # XGBoost reads only NaN as missing (JSON null); a transform.json of 0.0 keeps that reading.
    assert transform.to_dict()["booster_missing"] is None and np.isnan(again.booster_missing)
    older = FeatureTransform.from_dict({**transform.to_dict(), "booster_missing": 0.0})
    assert older.zero_is_missing and older.booster_missing == 0.0
    assert older.to_dict()["booster_missing"] == 0.0


def test_unknown_category_is_ignored_and_missing_key_is_imputed(xedu):
    _, _, column_transformer, transform, spec = xedu
    lead = {"Lead Origin": "Carrier pigeon"}  # unknown category, every other field missing
    row = transform.encode_instances([lead])[0]
    frame = pd.DataFrame([{c: np.nan for c in spec.features} | {"Lead Origin": "Carrier pigeon"}])
    expected = _sklearn(column_transformer, prepare_frame(frame, spec))[0]
    assert np.max(np.abs(row - expected)) <= 1e-9
    origin_columns = [i for i, n in enumerate(transform.output_names) if n.startswith("Lead Origin_")]
    assert row[origin_columns].sum() == 0.0


def test_select_placeholder_means_missing(xedu):
    _, _, _, transform, _ = xedu
    with_select = transform.encode_instances([{"City": "Select"}])
    with_missing = transform.encode_instances([{"City": None}])
    assert np.array_equal(with_select, with_missing)


@pytest.mark.parametrize(
    ("instance", "field", "message"),
    [
        ({"TotalVisits": "five"}, "TotalVisits", "expected a number"),
        ({"TotalVisits": math.inf}, "TotalVisits", "finite"),
        ({"TotalVisits": True}, "TotalVisits", "expected a number"),
        ({"City": 3}, "City", "expected a string"),
        ({"City": ["Mumbai"]}, "City", "expected a string"),
        ({"City": {"name": "Mumbai"}}, "City", "expected a string"),
        ({"City": True}, "City", "expected a string"),
        ({"City": math.nan}, "City", "expected a string"),
        ({"Do Not Email": "maybe"}, "Do Not Email", "yes/no"),
    ],
)
def test_ill_typed_field_names_index_and_field(xedu, instance, field, message):
    _, _, _, transform, _ = xedu
    with pytest.raises(InstanceError) as info:
        transform.encode_instances([{}, instance])
    assert info.value.index == 1 and info.value.field == field
    assert f"instances[1].{field}" in str(info.value) and message in str(info.value)


def test_boolean_feature_accepts_yes_no_and_json_booleans(xedu):
    _, _, _, transform, _ = xedu
    as_words = transform.encode_instances([{"Do Not Email": "Yes"}, {"Do Not Email": "no"}])
    as_booleans = transform.encode_instances([{"Do Not Email": True}, {"Do Not Email": False}])
    assert np.array_equal(as_words, as_booleans)
    assert not np.array_equal(as_words[0], as_words[1])


def test_non_object_instance_is_rejected(xedu):
    _, _, _, transform, _ = xedu
    with pytest.raises(InstanceError, match=r"instances\[0\]: expected an object"):
        transform.encode_instances([[1, 2, 3]])
