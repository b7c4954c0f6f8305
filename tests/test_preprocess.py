"""The scalable fit and the training matrix equal scikit-learn's ColumnTransformer on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from tests.conftest import XEDU_CSV, XEDU_LEAKAGE, XEDU_TARGET
from training.features import detect_features, target_array
from training.matrix import quantile_matrix
from training.preprocess import (
    build_column_transformer,
    export_transform,
    fit_feature_transform,
    prepare_columns,
    take,
)
from training.sources import ingest
from training.synth import TARGET, generate_leads, write_table


@pytest.fixture(scope="module")
def xedu():
    table = ingest(XEDU_CSV)
    spec = detect_features(table, XEDU_TARGET, XEDU_LEAKAGE)
    columns = prepare_columns(table, spec)
    rows = np.random.default_rng(3).permutation(table.num_rows)
    fit_rows, check_rows = rows[:7000], rows[7000:]
    reference = build_column_transformer(spec).fit(pd.DataFrame(take(columns, fit_rows)))
    return spec, columns, fit_rows, check_rows, reference


def test_fitted_parameters_equal_sklearn(xedu):
    spec, columns, fit_rows, _, reference = xedu
    expected = export_transform(reference, spec)
    actual = fit_feature_transform(take(columns, fit_rows), spec)
    assert [f.name for f in actual.numeric] == [f.name for f in expected.numeric]
    for got, want in zip(actual.numeric, expected.numeric):
        assert got.boolean == want.boolean
        assert got.median == want.median
        assert got.mean == pytest.approx(want.mean, rel=1e-12, abs=1e-12)
        assert got.scale == pytest.approx(want.scale, rel=1e-12)
    assert actual.categorical == expected.categorical
    assert any("missing" in f.categories for f in actual.categorical)
    assert actual.output_names == expected.output_names


def test_training_matrix_is_sklearns_matrix_stored_dense(xedu):
    spec, columns, fit_rows, check_rows, reference = xedu
    transform = fit_feature_transform(take(columns, fit_rows), spec)
    expected = reference.transform(pd.DataFrame(take(columns, check_rows))).toarray()
    label = np.arange(len(next(iter(columns.values()))), dtype=np.float64)
    matrix = quantile_matrix(transform, columns, check_rows, label, chunk=500)  # several chunks
    assert (matrix.num_row(), matrix.num_col()) == expected.shape
    # No cell is missing, zeros included: XGBoost keeps the dense layout (a byte per cell).
    assert matrix.num_nonmissing() == expected.size
    assert np.array_equal(matrix.get_label(), label[check_rows].astype(np.float32))
    # The same quantile cuts as the matrix scikit-learn's output makes in one piece.
    reference_matrix = xgb.QuantileDMatrix(expected, label[check_rows], missing=transform.booster_missing)
    for got, want in zip(matrix.get_quantile_cut(), reference_matrix.get_quantile_cut()):
        assert np.array_equal(got, want)


def test_placeholders_become_missing_and_booleans_numbers(xedu):
    spec, columns, *_ = xedu
    city = columns["City"]
    assert "Select" not in city.categories and city.isna().sum() > 0
    assert set(np.unique(columns["Do Not Email"])) <= {0.0, 1.0}


def test_yes_no_text_columns_are_booleans():
    frame = pd.DataFrame({"opted": ["Yes", "no", None, "YES"] * 20, "size": np.arange(80.0) % 7,
                          "y": np.linspace(0, 1, 80)})
    spec = detect_features(frame, "y")
    assert spec.boolean == ["opted"]
    values = prepare_columns(frame, spec)["opted"]
    assert np.array_equal(values[:4], [1.0, 0.0, np.nan, 1.0], equal_nan=True)


def test_prepared_columns_do_not_keep_the_ingested_table_alive(tmp_path):
    """A zero-copy view of one column would hold every buffer of its record batch (Arrow's C data
    interface releases a batch's buffers together): the whole table, for as long as training runs."""
    path = write_table(generate_leads(20_000, seed=4), tmp_path / "leads.parquet")
    table = ingest(path)
    spec = detect_features(table, TARGET)
    columns = prepare_columns(table, spec)
    assert table[TARGET].null_count == 0 and table[TARGET].num_chunks == 1  # the case a view would share
    assert target_array(table[TARGET]).flags.owndata
    assert all(columns[name].flags.owndata for name in spec.numeric)
