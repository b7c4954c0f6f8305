"""Drift of serving inputs and predictions against the training profile, with Vertex AI's metrics.

Vertex AI Model Monitoring compares distributions with the Jensen-Shannon divergence for
numeric features and the L-infinity distance for categorical ones, and alerts above a
per-feature threshold (0.3 unless set). We compute the same two metrics:

- numeric (and boolean) features and the predictions: both sides are histograms on the training
  profile's quantile bins (:func:`training.profile.bin_counts`); the metric is the
  Jensen-Shannon **divergence** with base-2 logarithms, so it lies in [0, 1]. SciPy's
  ``jensenshannon`` returns the Jensen-Shannon *distance*, the square root of the divergence:
  we square it. Missing values are not in the histograms; they are measured by the missing rate.
- categorical features: the largest absolute difference between the training and serving
  share of any category (``missing`` and unseen categories included), in [0, 1].

Alongside, each feature reports its missing rate on both sides and, for categorical features,
the share of serving rows in categories never seen in training (the model ignores those). A
missing rate that grows by more than ``max_missing_increase`` or an unseen rate above
``max_unseen_rate`` is a data-quality issue and alerts like drift does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon

from predictor.transform import BOOLEAN, CATEGORICAL, MISSING_CATEGORY, FeatureTransform, boolean_value
from training.profile import bin_counts

JENSEN_SHANNON = "jensen_shannon_divergence"
L_INFINITY = "l_infinity_distance"
DEFAULT_THRESHOLD = 0.3  # Vertex AI Model Monitoring's default alert threshold
SEED_THRESHOLD = 0.05  # the seed project's (much stricter) threshold
DEFAULT_MAX_MISSING_INCREASE = 0.1
DEFAULT_MAX_UNSEEN_RATE = 0.05
PREDICTION = "prediction"
MAX_BARS = 12  # categories shown per chart; the metric always uses all of them


@dataclass
class DriftThresholds:
    """When drift or a data-quality issue alerts.

    Attributes:
        default: Threshold of every feature without its own (Vertex AI's default, 0.3).
        per_feature: Feature name → threshold.
        prediction: Threshold of prediction drift; ``default`` when None.
        max_missing_increase: Largest tolerated rise of a feature's missing rate over training.
        max_unseen_rate: Largest tolerated share of serving rows in unseen categories.
    """

    default: float = DEFAULT_THRESHOLD
    per_feature: dict[str, float] = field(default_factory=dict)
    prediction: float | None = None
    max_missing_increase: float = DEFAULT_MAX_MISSING_INCREASE
    max_unseen_rate: float = DEFAULT_MAX_UNSEEN_RATE

    def for_feature(self, name: str) -> float:
        """The threshold that applies to a feature (``prediction`` for the predictions)."""
        if name == PREDICTION and self.prediction is not None:
            return self.prediction
        return self.per_feature.get(name, self.default)


@dataclass
class Histogram:
    """Training and serving shares on the same bins or categories, for charts."""

    labels: list[str]
    training: list[float]
    serving: list[float]


@dataclass
class FeatureDrift:
    """The drift of one feature (or of the predictions).

    Attributes:
        feature: Feature name, or ``prediction``.
        kind: ``numeric``, ``boolean``, ``categorical`` or ``prediction``.
        metric: :data:`JENSEN_SHANNON` or :data:`L_INFINITY`.
        value: The metric; None when the window has no non-missing value of the feature.
        threshold: The alert threshold.
        drifted: ``value > threshold``.
        rows: Serving rows with a value (missing excluded for numeric features).
        missing_rate_training: Share of training rows missing the feature.
        missing_rate_serving: Share of serving rows missing the feature.
        unseen_rate: Share of serving rows in categories absent from training (categorical only).
        unseen_categories: The most frequent unseen categories.
        issues: Data-quality findings (missing rate up, unseen categories).
        histogram: Training and serving distributions for the report.
    """

    feature: str
    kind: str
    metric: str
    value: float | None
    threshold: float
    drifted: bool
    rows: int
    missing_rate_training: float
    missing_rate_serving: float
    unseen_rate: float | None
    unseen_categories: list[str]
    issues: list[str]
    histogram: Histogram

    @property
    def alerting(self) -> bool:
        """Drifted or with a data-quality issue."""
        return self.drifted or bool(self.issues)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class DriftResult:
    """Drift of every feature and of the predictions over one serving window.

    Attributes:
        features: One entry per model feature, in the model's order.
        prediction: Drift of the model's predictions on the window.
        rows: Leads in the window.
        thresholds: The thresholds applied.
    """

    features: list[FeatureDrift]
    prediction: FeatureDrift
    rows: int
    thresholds: DriftThresholds

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features over their threshold."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def issue_features(self) -> list[str]:
        """Names of the features with a data-quality issue."""
        return [f.feature for f in self.features if f.issues]

    @property
    def alert(self) -> bool:
        """True when any feature or the predictions drifted or a data-quality issue was found."""
        return self.prediction.alerting or any(f.alerting for f in self.features)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``--json`` prints)."""
        return {
            "rows": self.rows,
            "alert": self.alert,
            "drifted_features": self.drifted_features,
            "issue_features": self.issue_features,
            "prediction_drifted": self.prediction.drifted,
            "thresholds": asdict(self.thresholds),
            "features": [f.to_dict() for f in self.features],
            "prediction": self.prediction.to_dict(),
        }


def js_divergence(p_counts: Any, q_counts: Any) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms on the same bins.

    SciPy's ``jensenshannon`` returns the JS *distance* (the square root of the divergence)
    and normalises the counts itself.
    """
    p = np.asarray(p_counts, dtype=np.float64)
    q = np.asarray(q_counts, dtype=np.float64)
    distance = float(jensenshannon(p, q, base=2))
    return min(1.0, distance * distance)


def linf_distance(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Largest absolute difference of two category distributions (absent categories count as 0)."""
    keys = set(p) | set(q)
    return max((abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in keys), default=0.0)


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def bin_labels(edges: list[float]) -> list[str]:
    """Readable labels of the open-ended bins (-inf, e1], (e1, e2], ..., (ek, inf)."""
    if not edges:
        return ["all"]
    labels = [f"≤ {_number(edges[0])}"]
    labels += [f"{_number(a)} – {_number(b)}" for a, b in zip(edges[:-1], edges[1:])]
    labels.append(f"> {_number(edges[-1])}")
    return labels


def boolean_bin_labels(edges: list[float]) -> list[str]:
    """Labels of a boolean feature's bins by the values they hold (``no``, ``yes``), not by cut points."""
    bounds = [-math.inf, *edges, math.inf]
    labels = []
    for (low, high), fallback in zip(zip(bounds[:-1], bounds[1:]), bin_labels(edges)):
        held = [word for value, word in ((0.0, "no"), (1.0, "yes")) if low < value <= high]
        labels.append(" / ".join(held) if held else fallback)
    return labels


def numeric_values(values: Any, boolean: bool = False) -> np.ndarray:
    """A serving column as float64 with NaN for missing; booleans map yes/no/true/false to 1/0."""
    series = pd.Series(values, dtype=object) if not isinstance(values, pd.Series) else values
    if boolean and series.dtype.kind in "OUSb":
        out = np.empty(len(series))
        for i, value in enumerate(series.astype(object)):
            try:
                out[i] = boolean_value(value)
            except (TypeError, ValueError):
                out[i] = np.nan
        return out
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def numeric_drift(name: str, kind: str, reference: Mapping[str, Any], values: np.ndarray,
                  thresholds: DriftThresholds) -> FeatureDrift:
    """Jensen-Shannon divergence of serving values against a profile histogram (``numeric_summary``)."""
    values = np.asarray(values, dtype=np.float64)
    edges = list(reference.get("edges", []))
    train_counts = np.asarray(reference["counts"], dtype=np.float64)
    serve_counts = np.asarray(bin_counts(values, edges), dtype=np.float64)
    n = int(serve_counts.sum())
    value = js_divergence(train_counts, serve_counts) if n and train_counts.sum() else None
    threshold = thresholds.for_feature(name)
    missing_serving = float(1 - n / values.size) if values.size else 0.0
    result = FeatureDrift(
        feature=name, kind=kind, metric=JENSEN_SHANNON, value=value, threshold=threshold,
        drifted=value is not None and value > threshold, rows=n,
        missing_rate_training=float(reference.get("missing_rate", 0.0)), missing_rate_serving=missing_serving,
        unseen_rate=None, unseen_categories=[], issues=[],
        histogram=Histogram(boolean_bin_labels(edges) if kind == BOOLEAN else bin_labels(edges),
                            _shares(train_counts), _shares(serve_counts)),
    )
    _missing_issue(result, thresholds)
    return result


def category_shares(values: Any, transform: FeatureTransform) -> tuple[dict[str, float], int]:
    """Share of each category, normalised as training did (missing and ``Select`` → ``missing``)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    names = [transform.category_value(u) for u in uniques] + [MISSING_CATEGORY]
    counts = np.bincount(np.where(codes < 0, len(uniques), codes), minlength=len(names))
    totals: dict[str, int] = {}
    for category, count in zip(names, counts):
        if count:
            totals[category] = totals.get(category, 0) + int(count)
    n = int(counts.sum())
    return ({k: v / n for k, v in totals.items()} if n else {}), n


def categorical_drift(name: str, reference: Mapping[str, Any], values: Any, transform: FeatureTransform,
                      thresholds: DriftThresholds) -> FeatureDrift:
    """L-infinity distance of serving category shares against the profile's ``frequencies``."""
    training = {str(k): float(v) for k, v in reference.get("frequencies", {}).items()}
    serving, n = category_shares(values, transform)
    value = linf_distance(training, serving) if n else None
    threshold = thresholds.for_feature(name)
    unseen = {k: v for k, v in serving.items() if k not in training and k != MISSING_CATEGORY}
    result = FeatureDrift(
        feature=name, kind=CATEGORICAL, metric=L_INFINITY, value=value, threshold=threshold,
        drifted=value is not None and value > threshold, rows=n,
        missing_rate_training=float(reference.get("missing_rate", training.get(MISSING_CATEGORY, 0.0))),
        missing_rate_serving=serving.get(MISSING_CATEGORY, 0.0),
        unseen_rate=float(sum(unseen.values())),
        unseen_categories=sorted(unseen, key=unseen.get, reverse=True)[:5],
        issues=[], histogram=_category_histogram(training, serving),
    )
    _missing_issue(result, thresholds)
    if result.unseen_rate > thresholds.max_unseen_rate:
        shown = ", ".join(repr(c) for c in result.unseen_categories[:3])
        result.issues.append(f"{result.unseen_rate:.1%} of serving rows in categories unseen in training ({shown})")
    return result


def _missing_issue(result: FeatureDrift, thresholds: DriftThresholds) -> None:
    increase = result.missing_rate_serving - result.missing_rate_training
    if increase > thresholds.max_missing_increase:
        result.issues.append(
            f"missing in {result.missing_rate_serving:.1%} of serving rows vs {result.missing_rate_training:.1%} in training"
        )


def _shares(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return (counts / total).tolist() if total else [0.0] * len(counts)


def _category_histogram(training: dict[str, float], serving: dict[str, float]) -> Histogram:
    """Categories by training share (then unseen ones by serving share); the tail folded into one bar."""
    order = sorted(training, key=training.get, reverse=True)
    order += sorted((k for k in serving if k not in training), key=serving.get, reverse=True)
    if len(order) > MAX_BARS:
        shown = sorted(order, key=lambda k: max(training.get(k, 0.0), serving.get(k, 0.0)), reverse=True)
        keep = set(shown[: MAX_BARS - 1])
        rest = [k for k in order if k not in keep]
        order = [k for k in order if k in keep]
        labels = order + [f"{len(rest)} others"]
        return Histogram(
            labels,
            [training.get(k, 0.0) for k in order] + [sum(training.get(k, 0.0) for k in rest)],
            [serving.get(k, 0.0) for k in order] + [sum(serving.get(k, 0.0) for k in rest)],
        )
    return Histogram(order, [training.get(k, 0.0) for k in order], [serving.get(k, 0.0) for k in order])


def compute_drift(profile: Mapping[str, Any], transform: FeatureTransform, frame: pd.DataFrame,
                  predictions: np.ndarray, thresholds: DriftThresholds | None = None) -> DriftResult:
    """Compares a serving window with a model's training profile.

    Args:
        profile: The model's ``profile.json``.
        transform: The model's fitted transform (feature types, category normalisation).
        frame: Serving rows keyed by raw feature name; a feature absent from the frame counts
            as missing on every row.
        predictions: The model's predictions on those rows.
        thresholds: Alert thresholds; Vertex AI's defaults when None.

    Returns:
        Per-feature and prediction drift.
    """
    thresholds = thresholds or DriftThresholds()
    rows = len(frame)
    results = []
    for name, kind in transform.feature_types().items():
        reference = profile["features"].get(name)
        if reference is None:
            continue  # a profile older than the feature set: nothing to compare against
        column = frame[name] if name in frame.columns else pd.Series([None] * rows, dtype=object)
        if kind == CATEGORICAL:
            results.append(categorical_drift(name, reference, column, transform, thresholds))
        else:
            values = numeric_values(column, boolean=kind == BOOLEAN)
            results.append(numeric_drift(name, kind, reference, values, thresholds))
    prediction = numeric_drift(PREDICTION, PREDICTION, profile[PREDICTION], np.asarray(predictions), thresholds)
    return DriftResult(features=results, prediction=prediction, rows=rows, thresholds=thresholds)
