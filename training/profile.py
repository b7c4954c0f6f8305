"""The training-data profile stored with a model, the reference for drift monitoring.

Numeric features (and the predictions) are summarised on quantile bins of the training data;
categorical features by the share of each category. The same binning is applied to serving
data, so both sides of a comparison are histograms on identical bins.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from predictor.transform import MISSING_CATEGORY
from training.features import FeatureSpec

DEFAULT_BINS = 10


def quantile_edges(values: np.ndarray, bins: int = DEFAULT_BINS) -> list[float]:
    """Interior cut points at the training quantiles (duplicates removed)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return []
    cuts = np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])
    return [float(c) for c in np.unique(cuts)]


def bin_counts(values: np.ndarray, edges: list[float]) -> list[int]:
    """Counts of finite values in the open-ended bins (-inf, e1], (e1, e2], ..., (ek, inf)."""
    finite = values[np.isfinite(values)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), finite, side="left")
    return np.bincount(index, minlength=len(edges) + 1).astype(int).tolist()


def numeric_summary(values: np.ndarray, bins: int = DEFAULT_BINS) -> dict[str, Any]:
    """Histogram on quantile bins plus moments and the missing rate of a numeric column."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    edges = quantile_edges(values, bins)
    return {
        "type": "numeric",
        "missing_rate": float(1 - finite.size / values.size) if values.size else 0.0,
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std()) if finite.size else None,
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "edges": edges,
        "counts": bin_counts(values, edges),
    }


def categorical_summary(values: pd.Series | pd.Categorical) -> dict[str, Any]:
    """Share of each category (missing values counted as ``missing``) and the missing rate."""
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    total = len(series)
    frequencies: dict[str, float] = {}
    for key, count in series.value_counts(dropna=False, sort=True).items():
        if count:
            name = MISSING_CATEGORY if pd.isna(key) else str(key)
            frequencies[name] = frequencies.get(name, 0.0) + float(count) / total
    return {
        "type": "categorical",
        "missing_rate": float(series.isna().mean()) if total else 0.0,
        "frequencies": frequencies,
    }


def build_profile(
    columns: Mapping[str, Any], spec: FeatureSpec, predictions: np.ndarray, rows: np.ndarray | None = None
) -> dict[str, Any]:
    """Profiles the training rows and the model's predictions on them.

    Args:
        columns: Prepared columns (:func:`training.preprocess.prepare_columns`) or a DataFrame.
        spec: The feature specification.
        predictions: The model's predictions for the profiled rows.
        rows: Which rows to profile (all when None), in the order of ``predictions``.
    """

    def values(column: str) -> Any:
        data = columns[column]
        return data if rows is None else data[rows]

    features: dict[str, Any] = {}
    for column in spec.numeric + spec.boolean:
        features[column] = numeric_summary(np.asarray(values(column), dtype=np.float64))
    for column in spec.categorical:
        features[column] = categorical_summary(values(column))
    return {"rows": int(len(predictions)), "features": features, "prediction": numeric_summary(predictions)}
