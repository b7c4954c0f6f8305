"""Alerts: what drifted or degraded, as a Slack-compatible webhook message.

The payload is Slack's incoming-webhook format (``text`` as the notification fallback plus
``blocks``); Mattermost, Rocket.Chat, Google Chat (``text``) and most chat tools accept it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from training.monitor.drift import DriftResult, FeatureDrift
from training.monitor.performance import PerformanceResult

WEBHOOK_ENV = "LEADSCORE_ALERT_WEBHOOK"
DEFAULT_TIMEOUT = 10.0


@dataclass
class Alert:
    """One alert about one model.

    Attributes:
        name: ``drift`` or ``degradation``.
        model: The monitored model reference.
        title: A one-line headline.
        lines: The findings, one per line.
        evidence: The measurements behind it (JSON-ready).
    """

    name: str
    model: str
    title: str
    lines: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The plain-text message."""
        return "\n".join([self.title, *(f"• {line}" for line in self.lines)])

    def slack_payload(self) -> dict[str, Any]:
        """Slack incoming-webhook JSON: ``text`` (fallback) and ``blocks``."""
        return {
            "text": self.text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": self.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(f"• {line}" for line in self.lines)[:3000]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"model `{self.model}` · leadscore monitor"}]},
            ],
        }


def _finding(feature: FeatureDrift) -> str:
    parts = []
    if feature.drifted:
        metric = "JS divergence" if feature.metric.startswith("jensen") else "L-inf distance"
        parts.append(f"{metric} {feature.value:.3f} > {feature.threshold:g}")
    parts.extend(feature.issues)
    return f"{feature.feature}: " + "; ".join(parts)


def drift_alert(model: str, window: str, drift: DriftResult) -> Alert | None:
    """The alert for a drift result, or None when nothing drifted."""
    if not drift.alert:
        return None
    flagged = [f for f in [*drift.features, drift.prediction] if f.alerting]
    names = ", ".join(f.feature for f in flagged)
    return Alert(
        name="drift",
        model=model,
        title=f"leadscore: drift in {model} ({names})",
        lines=[_finding(f) for f in flagged] + [f"window: {window} ({drift.rows:,} leads)"],
        evidence={"window": window, "drift": drift.to_dict()},
    )


def degradation_alert(model: str, window: str, performance: PerformanceResult) -> Alert | None:
    """The alert for a performance result, or None when the model did not degrade."""
    if not performance.degraded:
        return None
    lines = [
        f"{name.upper()} {performance.metrics[name]:.4f} vs {performance.reference[name]:.4f} at evaluation "
        f"({change:+.1%}, threshold {performance.threshold:.0%})"
        for name, change in performance.degradation.items()
    ]
    return Alert(
        name="degradation",
        model=model,
        title=f"leadscore: {model} degraded on {performance.rows:,} labelled leads",
        lines=[*lines, f"window: {window}"],
        evidence={"window": window, "performance": performance.to_dict()},
    )


@dataclass
class Delivery:
    """The outcome of posting an alert.

    Attributes:
        ok: The receiver answered 2xx.
        status_code: The HTTP status, None when no answer came.
        error: What went wrong.
    """

    ok: bool
    status_code: int | None = None
    error: str | None = None


def post_webhook(url: str, alert: Alert, timeout: float = DEFAULT_TIMEOUT) -> Delivery:
    """POSTs an alert to a Slack-compatible webhook; never raises (the outcome is returned and recorded)."""
    try:
        response = httpx.post(url, json=alert.slack_payload(), timeout=timeout)
    except httpx.HTTPError as exc:
        return Delivery(ok=False, error=f"{type(exc).__name__}: {exc}")
    if response.is_success:
        return Delivery(ok=True, status_code=response.status_code)
    return Delivery(ok=False, status_code=response.status_code, error=response.text[:500])
