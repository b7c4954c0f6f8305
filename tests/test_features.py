"""Feature type detection, ID-like columns and target mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.errors import DataError
from training.features import detect_features, target_array


def _frame(rows: int = 100) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "lead_id": [f"id-{i}" for i in range(rows)],
            "lead_number": np.arange(1000, 1000 + rows),
            "visits": rng.integers(0, 5, rows),
            "seconds": rng.random(rows) * 100,
            "source": pd.array(rng.choice(["a", "b", "c"], rows), dtype="str"),
            "legacy": pd.array(rng.choice(["x", "y"], rows), dtype=object),
            "opted_in": rng.random(rows) < 0.5,
            "constant": ["same"] * rows,
            "notes": [f"free text number {i % 80}" for i in range(rows)],
            "target": rng.random(rows),
        }
    )


def test_types_and_drops_are_detected():
    spec = detect_features(_frame(), "target")
    assert spec.numeric == ["visits", "seconds"]
    assert spec.boolean == ["opted_in"]
    assert spec.categorical == ["source", "legacy"]  # pandas 3 str and object dtypes
    assert spec.dropped["lead_id"].startswith("ID-like")
    assert spec.dropped["lead_number"].startswith("ID-like")
    assert spec.dropped["constant"] == "constant"
    assert spec.dropped["notes"].startswith("free-text-like")


def test_continuous_numbers_are_not_mistaken_for_ids():
    spec = detect_features(_frame(), "target")
    assert "seconds" in spec.numeric  # all distinct, but a float measurement


def test_excluded_columns_are_dropped_and_unknown_ones_rejected():
    assert detect_features(_frame(), "target", ["source"]).dropped["source"] == "excluded"
    with pytest.raises(DataError, match="excluded column\\(s\\) not found: nope"):
        detect_features(_frame(), "target", ["nope"])


def test_missing_target_is_an_error():
    with pytest.raises(DataError, match="target column 'converted' not found"):
        detect_features(_frame(), "converted")


def test_entirely_missing_feature_is_an_error():
    frame = _frame().assign(empty=np.nan)
    with pytest.raises(DataError, match="feature 'empty' is entirely missing"):
        detect_features(frame, "target")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (pd.Series(["Yes", "no", "TRUE", None]), [1.0, 0.0, 1.0, np.nan]),
        (pd.Series([True, False, True]), [1.0, 0.0, 1.0]),
        (pd.Series([0, 1, 1]), [0.0, 1.0, 1.0]),
        (pd.Series([0.25, 0.5, None]), [0.25, 0.5, np.nan]),
    ],
)
def test_target_mapping(values, expected):
    assert np.allclose(target_array(values), expected, equal_nan=True)


def test_non_numeric_target_is_an_error():
    with pytest.raises(DataError, match="target 't' is not numeric: values such as 'cold', 'hot'"):
        target_array(pd.Series(["hot", "cold"], name="t"))


def test_yes_no_words_are_booleans_whatever_their_case_and_spaces():
    frame = _frame()
    frame["agreed"] = np.resize(["Yes", " no", "YES\t", "n", None], len(frame))
    frame["answer"] = np.resize(["yes", "no", "maybe"], len(frame))  # one word that is not yes/no
    spec = detect_features(frame, "target")
    assert "agreed" in spec.boolean
    assert "answer" in spec.categorical
