"""Model performance on a serving window once the ground truth is known.

Labels (a CSV or Parquet of lead ids and outcomes) are joined to the window on a lead id;
RMSE and MAE on the joined rows are compared with the model's own evaluation
(``metrics.json``, measured on its held-out split at training time). A relative increase of
either beyond the threshold is a degradation. Too few labelled rows give a result but never an
alert: the error of a small sample says little.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from training.errors import MonitorError
from training.evaluate import regression_metrics
from training.features import target_array

DEFAULT_MAX_DEGRADATION = 0.1  # 10 % worse RMSE or MAE than at evaluation
DEFAULT_MIN_ROWS = 100
DEFAULT_ID_COLUMN = "lead_id"
COMPARED = ("rmse", "mae")


@dataclass
class PerformanceResult:
    """Performance on the labelled part of a window.

    Attributes:
        rows: Window leads that have a label.
        metrics: RMSE, MAE and R² on those rows.
        reference: The model's evaluation metrics (``metrics.json``).
        degradation: Metric → relative change against the reference (0.25 = 25 % worse).
        threshold: Largest tolerated relative degradation.
        min_rows: Labelled rows needed before a degradation alerts.
        degraded: True when a metric degraded beyond the threshold on enough rows.
    """

    rows: int
    metrics: dict[str, float]
    reference: dict[str, float]
    degradation: dict[str, float]
    threshold: float
    min_rows: int
    degraded: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def join_labels(window: pd.DataFrame, predictions: np.ndarray, labels: pd.DataFrame, id_column: str,
                label_column: str) -> tuple[np.ndarray, np.ndarray]:
    """Pairs each labelled lead's latest prediction with its label.

    Raises:
        MonitorError: The id or label column is missing, or no lead of the window is labelled.
    """
    if id_column not in window.columns:
        raise MonitorError(f"the window has no {id_column!r} column to join labels on (send it with each instance)")
    for column in (id_column, label_column):
        if column not in labels.columns:
            raise MonitorError(f"the labels have no {column!r} column; columns are: {', '.join(map(str, labels.columns))}")
    scored = pd.DataFrame({"id": window[id_column].astype(str).to_numpy(), "prediction": predictions})
    scored = scored.dropna(subset=["prediction"]).drop_duplicates("id", keep="last")
    truth = pd.DataFrame({"id": labels[id_column].astype(str).to_numpy(), "label": target_array(labels[label_column])})
    truth = truth.dropna(subset=["label"]).drop_duplicates("id", keep="last")
    joined = scored.merge(truth, on="id", how="inner")
    if joined.empty:
        raise MonitorError(f"no lead of the window has a label (joined on {id_column!r})")
    return joined["label"].to_numpy(dtype=np.float64), joined["prediction"].to_numpy(dtype=np.float64)


def compute_performance(y_true: np.ndarray, y_pred: np.ndarray, reference: Mapping[str, Any],
                        threshold: float = DEFAULT_MAX_DEGRADATION, min_rows: int = DEFAULT_MIN_ROWS) -> PerformanceResult:
    """RMSE and MAE on labelled serving rows against the model's evaluation.

    Args:
        y_true: Labels.
        y_pred: The model's predictions for the same leads.
        reference: The model's ``metrics.json``.
        threshold: Largest tolerated relative degradation of RMSE or MAE.
        min_rows: Labelled rows needed before a degradation alerts.

    Raises:
        MonitorError: The reference lacks RMSE or MAE, or fewer than 2 leads are labelled.
    """
    missing = [k for k in COMPARED if k not in reference]
    if missing:
        raise MonitorError(f"the model's metrics.json lacks {', '.join(missing)}")
    if len(y_true) < 2:
        raise MonitorError(f"{len(y_true)} labelled lead(s) in the window; at least 2 are needed")
    metrics = regression_metrics(y_true, y_pred)
    degradation = {k: (metrics[k] - float(reference[k])) / float(reference[k]) if reference[k] else float("inf")
                   for k in COMPARED}
    degraded = len(y_true) >= min_rows and any(v > threshold for v in degradation.values())
    return PerformanceResult(
        rows=int(len(y_true)), metrics={k: float(v) for k, v in metrics.items() if k != "rows"},
        reference={k: float(reference[k]) for k in COMPARED}, degradation=degradation,
        threshold=threshold, min_rows=min_rows, degraded=degraded,
    )
