"""The drift report: one self-contained HTML file with a chart per feature.

Charts are inline SVG drawn from the histograms the drift computation already holds; styles are
inline too, so the file opens offline, from an e-mail attachment or a CI artifact, with nothing
to fetch. The page is rendered with Jinja2 (autoescaped: category names come from user data).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from training.monitor.drift import DriftResult, FeatureDrift
from training.monitor.performance import PerformanceResult

CHART_WIDTH = 520
CHART_HEIGHT = 230
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 10, 74
_LABEL_CHARS = 18

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("training.monitor", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
)


@dataclass
class ReportContext:
    """What the report says besides the drift itself.

    Attributes:
        model: The monitored model reference.
        version: The model's version.
        window: The window's source.
        requests: Logged requests in the window (0 for a table of leads).
    """

    model: str
    version: str
    window: str
    requests: int = 0


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1] + "…"


def chart_geometry(feature: FeatureDrift) -> dict[str, Any]:
    """Bars, tick marks and labels of a grouped bar chart (training vs serving share per bin)."""
    histogram = feature.histogram
    n = max(len(histogram.labels), 1)
    plot_width = CHART_WIDTH - _LEFT - _RIGHT
    plot_height = CHART_HEIGHT - _TOP - _BOTTOM
    bottom = _TOP + plot_height
    peak = max([*histogram.training, *histogram.serving, 0.0])
    # Round the axis up to a tidy share so charts of similar features read alike.
    top = next((s for s in (0.05, 0.1, 0.2, 0.25, 0.4, 0.5, 0.6, 0.8, 1.0) if peak <= s), 1.0)
    group = plot_width / n
    bar = group * 0.38
    bars, labels = [], []
    for i, label in enumerate(histogram.labels):
        x0 = _LEFT + i * group + group * 0.12
        for side, share, offset in (("training", histogram.training[i], 0.0), ("serving", histogram.serving[i], bar)):
            height = plot_height * share / top
            bars.append({"side": side, "x": round(x0 + offset, 2), "y": round(bottom - height, 2), "w": round(bar, 2),
                         "h": round(height, 2), "title": f"{label}: {side} {share:.1%}"})
        labels.append({"x": round(_LEFT + (i + 0.5) * group + 4, 2), "y": bottom + 14, "text": _short(label)})
    ticks = [{"y": round(bottom - plot_height * f, 2), "text": f"{100 * top * f:g}%"} for f in (0.0, 0.5, 1.0)]
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "left": _LEFT, "right": CHART_WIDTH - _RIGHT,
            "bottom": bottom, "bars": bars, "labels": labels, "ticks": ticks}


def headline(drift: DriftResult, performance: PerformanceResult | None) -> str:
    """The one-line verdict at the top of the report."""
    parts = []
    if drift.drifted_features:
        parts.append(f"{len(drift.drifted_features)} of {len(drift.features)} features drifted: "
                     + ", ".join(drift.drifted_features))
    issues = [f for f in drift.issue_features if f not in drift.drifted_features]
    if issues:
        parts.append("data-quality issues in " + ", ".join(issues))
    if drift.prediction.alerting:
        parts.append("the predictions drifted")
    if performance is not None and performance.degraded:
        parts.append("performance degraded")
    if not parts:
        return f"No drift: all {len(drift.features)} features and the predictions are within their thresholds"
    return "; ".join(parts)


def render_report(drift: DriftResult, context: ReportContext, performance: PerformanceResult | None = None) -> str:
    """The HTML report as a string."""
    features = [*drift.features, drift.prediction]
    thresholds = drift.thresholds
    overrides = ", ".join(f"{k} {v:g}" for k, v in sorted(thresholds.per_feature.items()))
    threshold_text = f"{thresholds.default:g} by default" + (f"; {overrides}" if overrides else "")
    return _ENV.get_template("report.html").render(
        model=context.model,
        version=context.version,
        window=context.window,
        requests=context.requests,
        rows=drift.rows,
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        alert=drift.alert or (performance is not None and performance.degraded),
        headline=headline(drift, performance),
        threshold_text=threshold_text,
        all_features=features,
        charts={f.feature: chart_geometry(f) for f in features},
        performance=performance,
    )


def write_report(path: Path, drift: DriftResult, context: ReportContext,
                 performance: PerformanceResult | None = None) -> Path:
    """Writes the HTML report and returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(drift, context, performance), encoding="utf-8")
    return path
