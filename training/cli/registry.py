"""``leadscore registry``: versions, the champion, promotion by hand, rollback, the promotion log."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from predictor.artifacts import ArtifactError
from training.cli.app import app, console, print_json, stdout
from training.refs import DEFAULT_MODEL_NAME
from training.registry.config import (
    BACKEND_ENV,
    DEFAULT_REGION,
    PROJECT_ENV,
    REGION_ENV,
    REGISTRY_URI_ENV,
    SERVING_IMAGE_ENV,
    VERTEX_ENDPOINT_ENV,
    open_registry,
)

# The model libraries load only when a command runs, so that `leadscore --help` stays fast.
if TYPE_CHECKING:
    from training.registry.base import ModelVersion, PromotionEvent, Registration, Registry
    from training.train import TrainResult

registry_app = typer.Typer(
    help="Model registry: semantic versions, the champion alias, promotion, rollback and the promotion log. "
         "Local by default (in the state directory); --backend vertex uses Vertex AI Model Registry.",
    no_args_is_help=True,
)
app.add_typer(registry_app, name="registry")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Model name.")]


@registry_app.callback()
def _backend(
    backend: Annotated[str, typer.Option(envvar=BACKEND_ENV, help="Registry backend: local or vertex.")] = "local",
    project: Annotated[Optional[str], typer.Option(envvar=PROJECT_ENV, help="Google Cloud project (vertex).")] = None,
    location: Annotated[str, typer.Option(envvar=REGION_ENV, help="Vertex AI region (vertex).")] = DEFAULT_REGION,
    registry_uri: Annotated[Optional[str], typer.Option(
        envvar=REGISTRY_URI_ENV, help="gs://bucket/prefix for artifacts and the promotion log (vertex).")] = None,
    serving_image: Annotated[Optional[str], typer.Option(
        envvar=SERVING_IMAGE_ENV, help="CPR serving image URI for Model.upload (vertex, when registering).")] = None,
    api_endpoint: Annotated[Optional[str], typer.Option(
        envvar=VERTEX_ENDPOINT_ENV, help="Vertex AI API endpoint override (vertex).")] = None,
) -> None:
    # Through the environment, like --home, so that every registry user in this process
    # (including model references in other commands) sees the same backend.
    settings = {BACKEND_ENV: backend, PROJECT_ENV: project, REGION_ENV: location, REGISTRY_URI_ENV: registry_uri,
                SERVING_IMAGE_ENV: serving_image, VERTEX_ENDPOINT_ENV: api_endpoint}
    os.environ.update({key: value for key, value in settings.items() if value})


def _rmse(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _verification(registry: Registry, version: ModelVersion) -> str | None:
    """None when the version's artifacts verify, else what is wrong."""
    try:
        registry.verify(version)
    except ArtifactError as exc:
        return str(exc)
    return None


@registry_app.command("list")
def list_versions(
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Only this model.")] = None,
    verify: Annotated[bool, typer.Option(help="Check every version's artifacts against its manifest.")] = True,
    json_output: JsonOption = False,
) -> None:
    """List registered versions with their aliases, RMSE and artifact status."""
    registry = open_registry()
    versions = registry.versions(name)
    problems = {v.ref: _verification(registry, v) for v in versions} if verify else {}
    if json_output:
        print_json([{**v.to_dict(), **({"verified": problems[v.ref] is None, "problem": problems[v.ref]}
                                       if verify else {})} for v in versions])
        return
    if not versions:
        console.print("no registered versions" + (f" of {name}" if name else ""))
        return
    with_runs = any(v.run_id for v in versions)
    table = Table(title="Registered versions")
    for column in ("model", "version", "aliases", "RMSE", "registered (UTC)", *(["run"] if with_runs else []),
                   "artifacts"):
        table.add_column(column, justify="right" if column == "RMSE" else "left", no_wrap=column != "run")
    for v in versions:
        status = "not checked" if not verify else ("ok" if problems[v.ref] is None else "[red]FAILED[/]")
        table.add_row(v.name, v.version, ", ".join(v.aliases), _rmse(v.rmse), _when(v.created_at),
                      *([v.run_id or ""] if with_runs else []), status)
    stdout.print(table)
    for ref, problem in problems.items():
        if problem:
            console.print(f"[red]{escape(ref)}:[/] {escape(problem)}")


@registry_app.command()
def show(
    ref: Annotated[str, typer.Argument(help="name@champion, name@1.2.3 or a stored artifact path.")],
    json_output: JsonOption = False,
) -> None:
    """Show one version: metrics, schema, parameters, lineage, artifact status and its log entries."""
    registry = open_registry()
    version = registry.resolve(ref)
    problem = _verification(registry, version)
    events = [e for e in registry.history(version.name) if version.version in (e.version, e.previous_champion)]
    if json_output:
        print_json({**version.to_dict(), "verified": problem is None, "problem": problem,
                    "events": [e.to_dict() for e in events]})
        return
    stdout.print(f"[bold]{escape(version.ref)}[/]" + (f"  ({', '.join(version.aliases)})" if version.aliases else ""))
    facts = {
        "artifacts": version.artifact_uri,
        "verified": "yes" if problem is None else f"[red]NO[/]: {escape(problem)}",
        "created": version.created_at,
        "metrics": ", ".join(f"{k} {v:.5f}" if isinstance(v, float) else f"{k} {v}"
                             for k, v in version.metrics.items()),
        "data fingerprint": version.data_fingerprint or "n/a",
        "run": version.run_id or "n/a",
        "parameters": ", ".join(f"{k}={v}" for k, v in sorted(version.params.items())),
        "schema": ", ".join(f"{k}: {v}" for k, v in version.schema.items()),
    }
    if version.resource_name:
        facts["vertex ai"] = version.resource_name
    for key, value in facts.items():
        stdout.print(f"  {key:>16}: {value if key == 'verified' else escape(str(value))}")
    if events:
        _print_log(events, title="Promotion log entries")


def register_training(result: TrainResult, min_improvement: float, require_significance: bool) -> Registration:
    """Registers a training run's artifacts with the promotion policy (``leadscore train --register``)."""
    from training.registry.promotion import Holdout, PromotionPolicy

    policy = PromotionPolicy(min_improvement=min_improvement, require_significance=require_significance)
    with console.status("registering: comparing with the champion on the held-out rows"):
        return open_registry().register(result.out, Holdout.from_result(result), policy)


def print_registration(registration: Registration, json_output: bool = False) -> None:
    """Prints the outcome of a registration, promotion or rollback."""
    if json_output:
        print_json(registration.to_dict())
        return
    event = registration.event
    status = "[green]champion[/]" if registration.promoted else "[yellow]not promoted[/]"
    stdout.print(f"{escape(registration.version.ref)}: {status} ({event.action})")
    stdout.print(f"  {escape(event.reason)}")


@registry_app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="name@1.2.3, name@alias, or an artifact directory to register.")],
    reason: Annotated[Optional[str], typer.Option(help="Why (recorded in the promotion log).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Make a version champion by hand (logged as manual-promote, with the reason).

    A registered version keeps its number. An unregistered artifact directory is registered
    with the next release number and made champion without comparing it to the champion.
    """
    print_registration(open_registry().promote(ref, reason), json_output)


@registry_app.command()
def rollback(
    name: NameOption = DEFAULT_MODEL_NAME,
    to: Annotated[Optional[str], typer.Option(help="Version to roll back to (default: the previous champion).")] = None,
    reason: Annotated[Optional[str], typer.Option(help="Why (recorded in the promotion log).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Move the champion back to the previous champion in the promotion log (or to --to VERSION)."""
    print_registration(open_registry().rollback(name, to, reason), json_output)


def _when(stamp: str) -> str:
    return stamp[:16].replace("T", " ")


def _print_log(events: list[PromotionEvent], title: str) -> None:
    """The log as a table of numbers, then each entry's time, user and reason in full."""
    several = len({e.name for e in events}) > 1
    table = Table(title=title)
    for column in ("#", *(["model"] if several else []), "action", "version", "previous", "RMSE", "prev RMSE",
                   "rows"):
        table.add_column(column, justify="right" if "RMSE" in column or column in ("#", "rows") else "left",
                         no_wrap=True)
    for e in events:
        table.add_row(str(e.seq or ""), *([e.name] if several else []), e.action, e.version,
                      e.previous_champion or "", _rmse(e.challenger_rmse), _rmse(e.champion_rmse),
                      "" if e.rows is None else f"{e.rows:,}")
    stdout.print(table)
    stdout.print("RMSE: of the version; prev RMSE: of the champion before; rows: both measured on the same "
                 "held-out rows (empty: each version's own test RMSE)", style="dim")
    for i, e in enumerate(events, start=1):
        stdout.print(f"  #{e.seq or i} {_when(e.at)} UTC, {escape(e.user)}: {escape(e.reason)}")


@registry_app.command("log")
def log(
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Only this model.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Show the append-only promotion log: every decision with both RMSEs and the reason."""
    events = open_registry().history(name)
    if json_output:
        print_json([e.to_dict() for e in events])
        return
    if not events:
        console.print("the promotion log is empty")
        return
    _print_log(events, title="Promotion log")
