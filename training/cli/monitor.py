"""``leadscore monitor``: drift and performance checks, alert history, Vertex AI monitoring jobs."""

from __future__ import annotations

import os
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from training.cli.app import app, console, print_json, stdout
from training.cli.core import ModelRef
from training.errors import LeadscoreError

monitor_app = typer.Typer(
    help="Watch a model: drift and performance against its training profile, alerts, actions.",
    no_args_is_help=True,
)
app.add_typer(monitor_app, name="monitor")

ALERT_EXIT_CODE = 3


def _parse_thresholds(values: list[str] | None) -> dict[str, float]:
    thresholds = {}
    for item in values or []:
        name, sep, number = item.rpartition("=")
        try:
            if not sep or not name:
                raise ValueError
            thresholds[name] = float(number)
        except ValueError:
            raise LeadscoreError(f"--feature-threshold {item!r}: expected FEATURE=NUMBER, e.g. industry=0.05") from None
    return thresholds


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise LeadscoreError(f"--since {value!r}: expected an ISO date or time, e.g. 2026-11-01 or 2026-11-01T08:00") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _value(number: float | None, digits: int = 4) -> str:
    return "n/a" if number is None else f"{number:.{digits}f}"


@monitor_app.command("drift")
def drift(
    model: ModelRef,
    window: Annotated[str, typer.Option(
        help="Serving window: a prediction-log directory or .jsonl file (leadscore serve logs to "
             "<state dir>/predictions), a CSV/Parquet of leads, or a URI such as bq://project.dataset.table "
             "(a Vertex request-response logging table is read as a log).")],
    threshold: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Drift threshold of every feature (Vertex AI's default 0.3; the seed used 0.05).")] = 0.3,
    feature_threshold: Annotated[Optional[list[str]], typer.Option(
        help="Threshold of one feature, FEATURE=NUMBER (repeatable).")] = None,
    prediction_threshold: Annotated[Optional[float], typer.Option(
        min=0.0, max=1.0, help="Threshold of prediction drift (default: --threshold).")] = None,
    max_missing_increase: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Alert when a feature's missing rate rises by more than this.")] = 0.1,
    max_unseen_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Alert when more than this share of rows has a category unseen in training.")] = 0.05,
    since: Annotated[Optional[str], typer.Option(help="Only log entries from this ISO date/time on (UTC).")] = None,
    labels: Annotated[Optional[str], typer.Option(
        help="Ground truth (CSV/Parquet) joined on --id-column: adds RMSE/MAE against the model's evaluation.")] = None,
    id_column: Annotated[str, typer.Option(help="Lead id column in the window and the labels.")] = "lead_id",
    label_column: Annotated[Optional[str], typer.Option(help="Label column (default: the model's target).")] = None,
    max_degradation: Annotated[float, typer.Option(
        min=0.0, help="Alert when RMSE or MAE is worse than at evaluation by more than this share.")] = 0.1,
    min_labelled: Annotated[int, typer.Option(min=2, help="Labelled leads needed before degradation alerts.")] = 100,
    webhook: Annotated[Optional[str], typer.Option(
        envvar="LEADSCORE_ALERT_WEBHOOK", help="Slack-compatible webhook URL for alerts.")] = None,
    on_drift: Annotated[Optional[str], typer.Option(
        help="'retrain': start the training pipeline (leadscore run, or $LEADSCORE_RETRAIN_COMMAND) on drift.")] = None,
    on_degradation: Annotated[Optional[str], typer.Option(
        help="'rollback': roll the champion back through the model registry on degradation.")] = None,
    report: Annotated[Optional[Path], typer.Option(help="Write a self-contained HTML report here.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    fail_on_alert: Annotated[bool, typer.Option(
        help=f"Exit with code {ALERT_EXIT_CODE} when anything alerts (for schedulers and CI).")] = False,
) -> None:
    """Compare serving inputs and predictions with the model's training profile (and, with --labels, its accuracy).

    Numeric features and predictions: Jensen-Shannon divergence (base 2) on the training quantile bins;
    categorical features: L-infinity distance. Alerts go to the webhook and, like actions, into the
    history (leadscore monitor history).
    """
    from training.monitor.check import CheckConfig, run_check
    from training.monitor.drift import DriftThresholds

    config = CheckConfig(
        model=model,
        window=window,
        thresholds=DriftThresholds(default=threshold, per_feature=_parse_thresholds(feature_threshold),
                                   prediction=prediction_threshold, max_missing_increase=max_missing_increase,
                                   max_unseen_rate=max_unseen_rate),
        since=_parse_since(since),
        labels=labels,
        id_column=id_column,
        label_column=label_column,
        max_degradation=max_degradation,
        min_labelled=min_labelled,
        webhook=webhook,
        on_drift=on_drift,
        on_degradation=on_degradation,
        report=report,
    )
    with console.status(f"checking {window} against {model}"):
        result = run_check(config)
    if json_output:
        print_json(result.to_dict())
    else:
        _print_result(result)
    if fail_on_alert and result.alert:
        sys.exit(ALERT_EXIT_CODE)


def _print_result(result) -> None:  # noqa: ANN001 (CheckResult, imported lazily)
    window = result.window
    stdout.print(f"model [bold]{result.model}[/] (version {result.version}) · window {window.source}: "
                 f"{window.rows:,} leads" + (f" in {window.requests:,} logged requests" if window.requests else ""))
    served = window.model_versions
    if served and set(served) != {result.version}:
        listing = ", ".join(f"{escape(v)} ({n:,} leads)" for v, n in sorted(served.items()))
        stdout.print(f"[yellow]the window was served by {listing}; what follows is version {result.version} "
                     "on the same inputs[/]")
    table = Table(title="Drift against the training profile")
    table.add_column("feature", no_wrap=True)
    for column in ("metric", "value", "threshold", "drift", "missing (train → serving)", "unseen"):
        table.add_column(column, justify="left" if column in ("metric", "drift") else "right")
    for f in [*result.drift.features, result.drift.prediction]:
        status = "[red bold]yes[/]" if f.drifted else "[yellow]issue[/]" if f.issues else "[green]no[/]"
        table.add_row(
            escape(f.feature), "JS" if f.metric.startswith("jensen") else "L-inf", _value(f.value),
            f"{f.threshold:g}", status, f"{f.missing_rate_training:.1%} → {f.missing_rate_serving:.1%}",
            "" if f.unseen_rate is None else f"{f.unseen_rate:.1%}",
        )
    stdout.print(table)
    for f in [*result.drift.features, result.drift.prediction]:
        for issue in f.issues:
            stdout.print(f"[yellow]{escape(f.feature)}[/]: {escape(issue)}")
    perf = result.performance
    if perf is not None:
        table = Table(title=f"Performance on {perf.rows:,} labelled leads")
        for column in ("metric", "window", "at evaluation", "change"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for name, change in perf.degradation.items():
            style = "red bold" if change > perf.threshold else "green"
            table.add_row(name.upper(), f"{perf.metrics[name]:.4f}", f"{perf.reference[name]:.4f}",
                          f"[{style}]{change:+.1%}[/]")
        stdout.print(table)
        if perf.rows < perf.min_rows:
            stdout.print(f"[yellow]only {perf.rows} labelled leads (< {perf.min_rows}): no degradation alert[/]")
    for event in result.events:
        colour = "red" if event.kind == "alert" else "cyan"
        stdout.print(f"[{colour}]{event.kind} #{event.id}[/] {event.name}: {escape(event.summary)} "
                     f"({escape(event.status)})")
    if not result.alert:
        stdout.print("[green]no drift, no data-quality issue" + (", no degradation" if perf else "") + "[/]")
    if result.report:
        stdout.print(f"report: [bold]{result.report}[/]")


@monitor_app.command("history")
def history(
    limit: Annotated[int, typer.Option(min=1, help="How many events, newest first.")] = 50,
    kind: Annotated[Optional[str], typer.Option(help="Only 'alert' or 'action' events.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the events (with their evidence) as JSON.")] = False,
) -> None:
    """Show recorded alerts and actions with their outcome."""
    from training.monitor.history import History

    events = History().events(limit=limit, kind=kind)
    if json_output:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        stdout.print("no alerts or actions recorded")
        return
    table = Table(title="Monitoring history")
    for column in ("id", "time", "kind", "name", "model", "status", "summary"):
        table.add_column(column)
    for e in events:
        table.add_row(str(e.id), e.time, e.kind, e.name, escape(e.model), escape(e.status), escape(e.summary))
    stdout.print(table)


@monitor_app.command("create-job")
def create_job(
    endpoint: Annotated[str, typer.Option(help="Vertex AI endpoint resource name or ID.")],
    model: ModelRef,
    project: Annotated[Optional[str], typer.Option(envvar="GOOGLE_CLOUD_PROJECT", help="Google Cloud project.")] = None,
    location: Annotated[str, typer.Option(envvar="GOOGLE_CLOUD_REGION", help="Vertex AI region.")] = "us-central1",
    email: Annotated[Optional[list[str]], typer.Option(help="Who gets alert e-mails (repeatable).")] = None,
    notification_channel: Annotated[Optional[list[str]], typer.Option(
        help="Cloud Monitoring notification channel that also gets alerts (repeatable; e.g. the Terraform "
             "output notification_channel).")] = None,
    threshold: Annotated[float, typer.Option(min=0.0, max=1.0, help="Drift threshold of every feature.")] = 0.3,
    feature_threshold: Annotated[Optional[list[str]], typer.Option(
        help="Threshold of one feature, FEATURE=NUMBER (repeatable).")] = None,
    sample_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Share of requests logged.")] = 0.8,
    interval_hours: Annotated[int, typer.Option(min=1, help="Hours between analyses (daily by default).")] = 24,
    display_name: Annotated[Optional[str], typer.Option(help="Job name in the console.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the created job as JSON.")] = False,
) -> None:
    """Create a Vertex AI model deployment monitoring job with the same thresholds as `monitor drift`.

    The features come from the model's input schema (--model).
    """
    from google.cloud import aiplatform

    from predictor.model import LeadScoringModel
    from training.monitor.drift import DriftThresholds
    from training.monitor.vertex_job import MonitoringJobSpec, create_monitoring_job
    from training.registry.config import VERTEX_ENDPOINT_ENV
    from training.refs import resolve_model

    features = LeadScoringModel.load(resolve_model(model)).transform.feature_names
    spec = MonitoringJobSpec(
        endpoint=endpoint, features=features,
        thresholds=DriftThresholds(default=threshold, per_feature=_parse_thresholds(feature_threshold)),
        sample_rate=sample_rate, interval_hours=interval_hours, emails=list(email or []),
        notification_channels=list(notification_channel or []), display_name=display_name,
    )
    unknown = sorted(set(spec.thresholds.per_feature) - set(features))
    if unknown:
        raise LeadscoreError(f"--feature-threshold for unknown feature(s): {', '.join(unknown)}")
    # LEADSCORE_VERTEX_ENDPOINT: the same API endpoint override as the registry's (private endpoints).
    aiplatform.init(project=project, location=location, api_endpoint=os.environ.get(VERTEX_ENDPOINT_ENV) or None,
                    api_transport="rest")
    with console.status(f"creating the monitoring job for {endpoint}"):
        job = create_monitoring_job(spec)
    if json_output:
        print_json(job)
        return
    stdout.print(f"created [bold]{job['display_name']}[/] ({job['name']}, {job['state']}): "
                 f"{len(features)} features, threshold {threshold:g}, {sample_rate:.0%} sampled, every "
                 f"{interval_hours} h")
