"""One monitoring check: window → drift (and performance) → alerts → actions, all recorded.

This is what ``leadscore monitor drift`` runs; a scheduler can run it as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from predictor.artifacts import METRICS_FILE, PROFILE_FILE, open_artifacts, read_json
from predictor.model import LeadScoringModel
from predictor.transform import CATEGORICAL, BOOLEAN
from training.errors import MonitorError
from training.monitor.actions import ActionResult, rollback_champion, start_retrain
from training.monitor.alerts import Alert, post_webhook
from training.monitor.alerts import degradation_alert, drift_alert
from training.monitor.drift import DriftResult, DriftThresholds, compute_drift, numeric_values
from training.monitor.history import Event, History
from training.monitor.performance import (
    DEFAULT_ID_COLUMN,
    DEFAULT_MAX_DEGRADATION,
    DEFAULT_MIN_ROWS,
    PerformanceResult,
    compute_performance,
    join_labels,
)
from training.monitor.report import ReportContext, write_report
from training.monitor.window import Window, load_window
from training.refs import resolve_model

RETRAIN = "retrain"
ROLLBACK = "rollback"


@dataclass
class CheckConfig:
    """What to check and what to do about it.

    Attributes:
        model: Model reference (the model whose training profile and evaluation are the baseline).
        window: Serving window: prediction-log directory/file, CSV/Parquet of leads, or a URI.
        thresholds: Drift thresholds.
        since: Only log entries from this time on.
        labels: Ground truth (CSV/Parquet) to measure performance; None skips it.
        id_column: Lead id joining window and labels.
        label_column: Label column; the model's training target when None.
        max_degradation: Largest tolerated relative rise of RMSE or MAE.
        min_labelled: Labelled leads needed before a degradation alerts.
        webhook: Slack-compatible webhook URL for alerts; None records alerts without sending.
        on_drift: ``retrain`` to start the training pipeline when features or predictions drift.
        on_degradation: ``rollback`` to roll the champion back when performance degrades.
        report: Where to write the HTML report; None writes none.
        retrain_command: Command of the retraining job (default: ``leadscore run``).
    """

    model: str
    window: str
    thresholds: DriftThresholds = field(default_factory=DriftThresholds)
    since: datetime | None = None
    labels: str | None = None
    id_column: str = DEFAULT_ID_COLUMN
    label_column: str | None = None
    max_degradation: float = DEFAULT_MAX_DEGRADATION
    min_labelled: int = DEFAULT_MIN_ROWS
    webhook: str | None = None
    on_drift: str | None = None
    on_degradation: str | None = None
    report: Path | None = None
    retrain_command: list[str] | None = None


@dataclass
class CheckResult:
    """Everything a check measured and did.

    Attributes:
        model: The model reference checked.
        version: Its version.
        window: The window read.
        drift: Drift per feature and of the predictions.
        performance: Performance on labelled leads, when labels were given.
        events: The alerts and actions recorded, in order.
        report: The HTML report written, if any.
    """

    model: str
    version: str
    window: Window
    drift: DriftResult
    performance: PerformanceResult | None
    events: list[Event]
    report: Path | None = None

    @property
    def alert(self) -> bool:
        """True when drift, a data-quality issue or a degradation was found."""
        return self.drift.alert or (self.performance is not None and self.performance.degraded)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``leadscore monitor drift --json`` prints)."""
        return {
            "model": self.model,
            "version": self.version,
            "window": {"source": self.window.source, "rows": self.window.rows, "requests": self.window.requests,
                       "model_versions": self.window.model_versions, "skipped_lines": self.window.skipped_lines},
            "alert": self.alert,
            **{k: v for k, v in self.drift.to_dict().items() if k != "alert"},
            "performance": self.performance.to_dict() if self.performance else None,
            "events": [e.to_dict() for e in self.events],
            "report": str(self.report) if self.report else None,
        }


def score_window(model: LeadScoringModel, frame: pd.DataFrame) -> np.ndarray:
    """The model's predictions for a window's rows (a feature absent from the window is missing)."""
    types = model.transform.feature_types()
    columns = {}
    for name in model.transform.feature_names:
        column = frame[name] if name in frame.columns else pd.Series([None] * len(frame), dtype=object)
        if types[name] == CATEGORICAL:
            columns[name] = column.astype(object).where(column.notna(), None).to_numpy()
        else:
            columns[name] = numeric_values(column, boolean=types[name] == BOOLEAN)
    return model.predict_matrix(model.transform.transform_columns(columns))


def run_check(config: CheckConfig, history: History | None = None) -> CheckResult:
    """Runs one monitoring check.

    Raises:
        MonitorError: The window, labels or model cannot be used, or an action is unknown.
        training.errors.SourceError: A source cannot be read.
        predictor.artifacts.ArtifactError: The model's artifacts are missing or altered.
    """
    if config.on_drift not in (None, RETRAIN):
        raise MonitorError(f"--on-drift {config.on_drift!r}: the only action is {RETRAIN!r}")
    if config.on_degradation not in (None, ROLLBACK):
        raise MonitorError(f"--on-degradation {config.on_degradation!r}: the only action is {ROLLBACK!r}")
    history = history or History()
    artifacts = open_artifacts(resolve_model(config.model))
    try:
        model = LeadScoringModel.load(artifacts.path)
        if not (artifacts.path / PROFILE_FILE).is_file():
            raise MonitorError(f"{config.model}: the artifacts have no {PROFILE_FILE} to compare with")
        profile = read_json(artifacts.path / PROFILE_FILE)
        reference = read_json(artifacts.path / METRICS_FILE) if (artifacts.path / METRICS_FILE).is_file() else {}
    finally:
        artifacts.cleanup()

    window = load_window(config.window, since=config.since)
    predictions = score_window(model, window.frame)
    drift = compute_drift(profile, model.transform, window.frame, predictions, config.thresholds)
    performance = None
    if config.labels:
        from training.sources import read_table

        label_column = config.label_column or str(model.metadata.get("target") or "")
        y_true, y_pred = join_labels(window.frame, predictions, read_table(config.labels), config.id_column,
                                     label_column)
        performance = compute_performance(y_true, y_pred, reference, config.max_degradation, config.min_labelled)

    events: list[Event] = []
    alert = drift_alert(config.model, window.source, drift)
    if alert is not None:
        event = _raise_alert(alert, config.webhook, history)
        events.append(event)
        if config.on_drift == RETRAIN and (drift.drifted_features or drift.prediction.drifted):
            evidence = {"alert_id": event.id, "model": config.model, "version": model.version, **alert.evidence}
            events.append(_record_action(start_retrain("drift", evidence, config.retrain_command), config.model,
                                         event, history))
    alert = degradation_alert(config.model, window.source, performance) if performance else None
    if alert is not None:
        event = _raise_alert(alert, config.webhook, history)
        events.append(event)
        if config.on_degradation == ROLLBACK:
            reason = f"leadscore monitor alert #{event.id}: {alert.title}"
            events.append(_record_action(rollback_champion(model.name, reason), config.model, event, history))

    report = None
    if config.report is not None:
        context = ReportContext(model=config.model, version=model.version, window=window.source,
                                requests=window.requests)
        report = write_report(config.report, drift, context, performance)
    return CheckResult(model=config.model, version=model.version, window=window, drift=drift,
                       performance=performance, events=events, report=report)


def _raise_alert(alert: Alert, webhook: str | None, history: History) -> Event:
    """Sends an alert (when a webhook is configured) and records it with the delivery outcome."""
    evidence = dict(alert.evidence)
    if webhook:
        delivery = post_webhook(webhook, alert)
        status = "sent" if delivery.ok else "webhook failed"
        evidence["delivery"] = {"ok": delivery.ok, "status_code": delivery.status_code, "error": delivery.error}
    else:
        status = "recorded (no webhook)"
    return history.record(Event(kind="alert", name=alert.name, model=alert.model, status=status,
                                summary=alert.title, evidence={"message": alert.text, **evidence}))


def _record_action(result: ActionResult, model: str, alert: Event, history: History) -> Event:
    status = "done" if result.ok else "failed"
    if result.ok and result.name == RETRAIN:
        status = "started"
    return history.record(Event(kind="action", name=result.name, model=model, status=status, summary=result.summary,
                                evidence={"alert_id": alert.id, **result.details}))
