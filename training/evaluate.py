"""Evaluation on the held-out split: metrics with an interval, binned confusion, calibration, importance."""

from __future__ import annotations

from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from predictor.transform import FeatureTransform

CONFUSION_BINS = 5
CALIBRATION_BINS = 10
BOOTSTRAP_RESAMPLES = 1000
# Above this many rows the plain bootstrap (rows x resamples random draws) gets slow; the
# bag of little bootstraps gives the same interval from small subsets.
PLAIN_BOOTSTRAP_MAX_ROWS = 50_000


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """RMSE, MAE and R² of predictions against the truth."""
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, y_pred))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "r2": float(r2_score(y_true, y_pred)),
        "rows": int(len(y_true)),
    }


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_rmse_interval(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    confidence: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """A percentile bootstrap interval for the RMSE.

    Up to :data:`PLAIN_BOOTSTRAP_MAX_ROWS` rows, rows are resampled with replacement
    ``resamples`` times. Beyond that, the bag of little bootstraps (Kleiner et al., 2014) is
    used: 10 random subsets of ``n ** 0.6`` rows, each resampled up to the full ``n`` with
    multinomial weights (``resamples / 10`` times); each subset gives the percentiles of the
    resampled RMSE minus the subset's RMSE, and their average is put around the RMSE of all
    rows. It has the plain bootstrap's accuracy at a cost that does not grow with
    ``n * resamples``.

    Returns:
        ``{"low", "high", "confidence", "method", "resamples"}``.
    """
    errors = (np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)) ** 2
    n = len(errors)
    rng = np.random.default_rng(seed)
    if n <= PLAIN_BOOTSTRAP_MAX_ROWS:
        means = np.empty(resamples)
        step = max(1, 5_000_000 // max(n, 1))  # resamples per vectorised batch
        for start in range(0, resamples, step):
            count = min(step, resamples - start)
            means[start:start + count] = errors[rng.integers(0, n, size=(count, n))].mean(axis=1)
        low, high = _percentile_interval(np.sqrt(means), confidence)
        method = "percentile bootstrap"
    else:
        # Each subset estimates the spread of the bootstrap RMSE around its own RMSE; the averaged
        # spread is put around the RMSE of all rows.
        subset_size, subsets, per_subset = int(n ** 0.6), 10, max(50, resamples // 10)
        rmse = float(np.sqrt(errors.mean()))
        spreads = []
        for _ in range(subsets):
            subset = errors[rng.choice(n, size=subset_size, replace=False)]
            weights = rng.multinomial(n, np.full(subset_size, 1 / subset_size), size=per_subset)
            deviations = np.sqrt(weights @ subset / n) - np.sqrt(subset.mean())
            spreads.append(_percentile_interval(deviations, confidence))
        low, high = (rmse + float(v) for v in np.mean(spreads, axis=0))
        method = "bag of little bootstraps"
    return {"low": low, "high": high, "confidence": confidence, "method": method, "resamples": resamples}


def _bin_label(low: float | None, high: float | None) -> str:
    if low is None:
        return f"< {high:.3g}"
    if high is None:
        return f">= {low:.3g}"
    return f"[{low:.3g}, {high:.3g})"


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, bins: int = CONFUSION_BINS) -> dict[str, Any]:
    """A confusion matrix of binned scores, in the KFP ``ClassificationMetrics`` shape.

    Truth and prediction are binned with the same boundaries, taken from the truth: its
    quintiles, or, when the truth has at most ``bins`` distinct values (a 0/1 target), the
    midpoints between those values. (The seed binned truth and predictions on their own
    quantiles, so a model that was off by a constant looked perfect.)

    Returns:
        ``{"annotationSpecs": [{"displayName": label}, ...], "rows": [{"row": [counts]}, ...],
        "boundaries": [...]}``: row ``i`` counts the rows whose truth is in bin ``i`` by the
        bin of their prediction. The first two keys are what ``ClassificationMetrics.
        log_confusion_matrix`` writes to an artifact's ``confusionMatrix`` metadata.
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    distinct = np.unique(y_true)
    if len(distinct) <= bins:
        boundaries = (distinct[:-1] + distinct[1:]) / 2
        labels = [f"{v:g}" for v in distinct]
    else:
        boundaries = np.unique(np.quantile(y_true, np.linspace(0, 1, bins + 1)[1:-1]))
        edges: list[float | None] = [None, *boundaries.tolist(), None]
        labels = [_bin_label(lo, hi) for lo, hi in zip(edges[:-1], edges[1:])]
    k = len(boundaries) + 1
    truth = np.searchsorted(boundaries, y_true, side="right")
    predicted = np.searchsorted(boundaries, y_pred, side="right")
    matrix = np.bincount(truth * k + predicted, minlength=k * k).reshape(k, k)
    return {
        "annotationSpecs": [{"displayName": label} for label in labels],
        "rows": [{"row": [int(c) for c in row]} for row in matrix],
        "boundaries": [float(b) for b in boundaries],
    }


def calibration_table(y_true: np.ndarray, y_pred: np.ndarray, bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """Mean predicted vs mean actual per decile of the predictions (fewer bins when scores tie)."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    cuts = np.unique(np.quantile(y_pred, np.linspace(0, 1, bins + 1)[1:-1]))
    index = np.searchsorted(cuts, y_pred, side="right")
    table = []
    for b in range(len(cuts) + 1):
        members = index == b
        if not members.any():
            continue
        table.append({
            "bin": b + 1,
            "rows": int(members.sum()),
            "min_predicted": float(y_pred[members].min()),
            "max_predicted": float(y_pred[members].max()),
            "mean_predicted": float(y_pred[members].mean()),
            "mean_actual": float(y_true[members].mean()),
        })
    return table


def feature_importance(booster: xgb.Booster, transform: FeatureTransform) -> dict[str, dict[str, float]]:
    """Total gain per raw feature (one-hot columns summed into their feature), largest first.

    Total gain, not XGBoost's average gain per split: averages cannot be added up across a
    feature's one-hot columns.

    Returns:
        Raw feature → ``{"total_gain", "share"}`` (shares sum to 1); unused features get 0.
    """
    scores = booster.get_score(importance_type="total_gain")
    sources = transform.output_sources()
    totals = dict.fromkeys(transform.feature_names, 0.0)
    for key, gain in scores.items():
        totals[sources[int(key.removeprefix("f"))]] += float(gain)
    overall = sum(totals.values()) or 1.0
    ranked = sorted(totals.items(), key=lambda item: -item[1])
    return {name: {"total_gain": gain, "share": gain / overall} for name, gain in ranked}


def evaluate(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    booster: xgb.Booster,
    transform: FeatureTransform,
    seed: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Everything the artifact records about the held-out split.

    Returns:
        ``metrics`` (for ``metrics.json``: rmse, mae, r2, rows and the RMSE interval bounds
        ``rmse_ci95_low``/``rmse_ci95_high``) and ``evaluation`` (for ``evaluation.json``: the
        interval's details, the confusion matrix, the calibration table, feature importance).
    """
    metrics = regression_metrics(y_true, y_pred)
    interval = bootstrap_rmse_interval(y_true, y_pred, seed=seed)
    metrics.update({"rmse_ci95_low": interval["low"], "rmse_ci95_high": interval["high"]})
    evaluation = {
        "rmse_interval": interval,
        "confusion_matrix": confusion_matrix(y_true, y_pred),
        "calibration": calibration_table(y_true, y_pred),
        "feature_importance": feature_importance(booster, transform),
    }
    return metrics, evaluation

