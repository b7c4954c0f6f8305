"""Feature type detection and target preparation.

Decides, for every column of a lead table, whether it is a numeric, boolean or categorical
feature or is dropped (excluded, ID-like, free text, constant, timestamp), and says why.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from predictor.transform import BOOLEAN_WORDS
from training.errors import DataError

log = logging.getLogger(__name__)

# A column whose values are all distinct is an identifier, not a feature, once there are
# enough rows for that to be telling.
ID_MIN_ROWS = 50
# A text column with more distinct values than this share of its rows is free text.
FREE_TEXT_RATIO = 0.5


@dataclass
class FeatureSpec:
    """Which columns feed the model, and how.

    Attributes:
        target: The target column.
        numeric: Numeric features (median impute + standard scale).
        boolean: Boolean features (0/1, then treated as numeric).
        categorical: Categorical features (constant ``missing`` + one-hot).
        dropped: Column → the reason it is not a feature.
    """

    target: str
    numeric: list[str] = field(default_factory=list)
    boolean: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """All feature columns in model order: numeric, boolean, categorical."""
        return self.numeric + self.boolean + self.categorical


def _is_text(series: pd.Series) -> bool:
    return ptypes.is_string_dtype(series.dtype) or ptypes.is_object_dtype(series.dtype) or isinstance(
        series.dtype, pd.CategoricalDtype
    )


def _drop_reason(series: pd.Series, rows: int) -> str | None:
    non_null = series.dropna()
    if ptypes.is_datetime64_any_dtype(series.dtype) or isinstance(series.dtype, pd.DatetimeTZDtype):
        return "timestamp column (not a feature)"
    distinct = non_null.nunique()
    if distinct <= 1 and len(non_null) == rows:
        return "constant"
    id_typed = _is_text(series) or ptypes.is_integer_dtype(series.dtype)
    if id_typed and rows >= ID_MIN_ROWS and len(non_null) == rows and distinct == rows:
        return "ID-like (a distinct value on every row)"
    if _is_text(series) and rows >= ID_MIN_ROWS and distinct > FREE_TEXT_RATIO * rows:
        return f"free-text-like ({distinct} distinct values in {rows} rows)"
    return None


def detect_features(frame: pd.DataFrame, target: str, exclude: Iterable[str] = ()) -> FeatureSpec:
    """Classifies the columns of a lead table.

    Args:
        frame: The table, target included.
        target: Name of the target column.
        exclude: Columns never to use (leakage, identifiers the rules miss).

    Returns:
        The feature specification; dropped columns carry the reason.

    Raises:
        DataError: The target is missing, a column name is duplicated, an excluded column
            does not exist, or a feature is entirely missing.
    """
    duplicated = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if duplicated:
        raise DataError(f"duplicate column names: {', '.join(map(str, duplicated))}")
    if target not in frame.columns:
        raise DataError(f"target column {target!r} not found; columns are: {', '.join(map(str, frame.columns))}")
    excluded = list(exclude)
    unknown = [c for c in excluded if c not in frame.columns]
    if unknown:
        raise DataError(f"excluded column(s) not found: {', '.join(unknown)}")
    spec = FeatureSpec(target=target)
    rows = len(frame)
    for column in frame.columns:
        if column == target:
            continue
        series = frame[column]
        if column in excluded:
            spec.dropped[column] = "excluded"
            continue
        if rows and series.isna().all():
            raise DataError(f"feature {column!r} is entirely missing; exclude it or fix the source")
        reason = _drop_reason(series, rows)
        if reason:
            spec.dropped[column] = reason
        elif ptypes.is_bool_dtype(series.dtype) or _is_boolean_object(series):
            spec.boolean.append(column)
        elif ptypes.is_numeric_dtype(series.dtype):
            spec.numeric.append(column)
        else:
            spec.categorical.append(column)
    for column, reason in spec.dropped.items():
        log.info("dropping column %r: %s", column, reason)
    if not spec.features:
        raise DataError("no usable feature columns remain after dropping: " + ", ".join(spec.dropped))
    return spec


def _is_boolean_object(series: pd.Series) -> bool:
    """A nullable column of Python booleans (pandas keeps bool-with-NA as object)."""
    if not ptypes.is_object_dtype(series.dtype):
        return False
    values = series.dropna()
    return len(values) > 0 and all(isinstance(v, (bool, np.bool_)) for v in values.unique())


def target_array(series: pd.Series) -> np.ndarray:
    """Converts a target column to float: numbers stay, booleans and yes/no become 1/0.

    Missing targets stay NaN (the caller drops those rows).

    Raises:
        DataError: The target holds values that are neither numeric nor yes/no/true/false.
    """
    if ptypes.is_bool_dtype(series.dtype) or ptypes.is_numeric_dtype(series.dtype):
        return series.astype("float64").to_numpy(na_value=np.nan)
    values = series.astype("object")
    out = np.full(len(values), np.nan)
    bad: set[str] = set()
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and np.isnan(value)):
            continue
        if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
            out[i] = float(value)
            continue
        word = str(value).strip().lower()
        if word in BOOLEAN_WORDS:
            out[i] = BOOLEAN_WORDS[word]
        else:
            try:
                out[i] = float(word)
            except ValueError:
                bad.add(str(value))
    if bad:
        sample = ", ".join(repr(v) for v in sorted(bad)[:5])
        raise DataError(f"target {series.name!r} is not numeric: values such as {sample} (yes/no and booleans are mapped)")
    return out
