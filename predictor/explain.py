"""Exact per-feature explanations: XGBoost's TreeSHAP, summed back to the raw input features.

Vertex AI's Explainable AI (sampled Shapley, integrated gradients) is approximate and deprecated;
XGBoost computes exact Shapley values of a tree ensemble itself (``pred_contribs=True``). They
are additive: the attributions of one row plus the base value equal the model's margin, which
for the regression objective the model is trained with (``reg:squarederror``) is the prediction.

The booster sees model columns (a scaled number, one column per category); a user thinks in
raw fields (``industry``), so the attributions of the one-hot columns of a categorical feature
are summed into their source feature (:meth:`FeatureTransform.output_sources`). Summing keeps
the additivity.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xgboost as xgb

from predictor.transform import FeatureTransform


@dataclass
class Explanations:
    """Attributions of a batch of rows.

    Attributes:
        features: Raw feature names, the columns of ``attributions``.
        attributions: Shape ``(rows, len(features))``: each raw feature's contribution to the score.
        base_values: Shape ``(rows,)``: the model's expected score (the same for every row).
    """

    features: list[str]
    attributions: np.ndarray
    base_values: np.ndarray

    def row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as plain JSON types: ``{"base_value": b, "attributions": {feature: value}}``."""
        return {
            "base_value": float(self.base_values[i]),
            "attributions": dict(zip(self.features, self.attributions[i].tolist())),
        }


def source_matrix(transform: FeatureTransform) -> np.ndarray:
    """The 0/1 matrix that sums model columns into raw features, shape ``(n_outputs, n_features)``."""
    features = transform.feature_names
    index = {name: j for j, name in enumerate(features)}
    summing = np.zeros((transform.n_outputs, len(features)), dtype=np.float64)
    summing[np.arange(transform.n_outputs), [index[s] for s in transform.output_sources()]] = 1.0
    return summing


def explain_matrix(booster: xgb.Booster, transform: FeatureTransform, matrix: np.ndarray) -> Explanations:
    """Exact TreeSHAP attributions of transformed rows, per raw feature.

    Args:
        booster: The trained booster.
        transform: The transform that produced ``matrix``.
        matrix: Model input rows, as :meth:`FeatureTransform.encode_instances` returns them.

    Returns:
        Per-row attributions and base values; ``attributions.sum(axis=1) + base_values`` equals
        the booster's margin for each row.
    """
    # The DMatrix reads missing values exactly as prediction does (see transform.py).
    contribs = booster.predict(xgb.DMatrix(matrix, missing=transform.booster_missing), pred_contribs=True)
    contribs = contribs.astype(np.float64)
    return Explanations(
        features=transform.feature_names,
        attributions=contribs[:, :-1] @ source_matrix(transform),
        base_values=contribs[:, -1],  # the last column is the bias: the expected margin
    )
