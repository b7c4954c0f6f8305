"""``leadscore runs list|show|compare``: the local record of training runs."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from training.cli.app import app, print_json, stdout

runs_app = typer.Typer(help="Training runs recorded in the state directory (runs.db).", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else ("" if value is None else escape(str(value)))


@runs_app.command("list")
def list_runs(
    experiment: Annotated[Optional[str], typer.Option(help="Only this experiment's runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many (newest first).")] = 20,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List training runs, newest first (`runs show RUN` has the details)."""
    from training.tracking import RunStore

    runs = RunStore().list(experiment, limit)
    if json_output:
        print_json([r.to_dict() for r in runs])
        return
    table = Table(title=f"Training runs ({len(runs)}; a run ID starts with its UTC start time)")
    table.add_column("run", no_wrap=True)
    table.add_column("status", no_wrap=True)
    for name in ("rows", "RMSE", "R²", "trials"):
        table.add_column(name, justify="right", no_wrap=True)
    for run in runs:
        fingerprint = run.data.get("fingerprint") or {}
        table.add_row(run.run_id, run.status, f"{fingerprint.get('rows', 0):,}",
                      _number(run.metrics.get("rmse")), _number(run.metrics.get("r2")), str(len(run.trials) or ""))
    stdout.print(table)


@runs_app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="Run ID (or a unique prefix).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show everything recorded about one run."""
    from training.tracking import RunStore

    run = RunStore().get(run_id)
    if json_output:
        print_json(run.to_dict())
        return
    fingerprint = run.data.get("fingerprint") or {}
    facts = {
        "experiment": run.experiment, "status": run.status, "started": run.started_at, "ended": run.ended_at,
        "source": run.data.get("source"), "query": run.data.get("query"),
        "data": f"{fingerprint.get('rows', 0):,} rows, {len(fingerprint.get('schema', {}))} columns, "
                f"sha256 {fingerprint.get('sha256', '')[:16]}…",
        "code": f"leadscore {run.code.get('leadscore')}, git {run.code.get('git_sha') or 'n/a'}"
                + (" (uncommitted changes)" if run.code.get("git_dirty") else ""),
        "artifacts": run.artifact_uri, "error": run.error,
    }
    table = Table(title=f"Run {run.run_id}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key, value in facts.items():
        if value is not None:
            table.add_row(key, escape(str(value)))
    for key, value in run.metrics.items():
        table.add_row(f"metric {key}", _number(value))
    for key, value in run.params.items():
        table.add_row(f"param {key}", _number(value))
    stdout.print(table)
    if run.trials:
        best = min((t for t in run.trials if t["validation_rmse"] is not None), key=lambda t: t["validation_rmse"])
        stdout.print(f"{len(run.trials)} tuning trials; best #{best['number']}: validation RMSE "
                     f"{best['validation_rmse']:.4f} with {escape(str(best['params']))}")


@runs_app.command()
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run IDs (or unique prefixes).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare runs side by side: metrics, then the parameters and data that differ."""
    from training.tracking import RunStore

    store = RunStore()
    runs = [store.get(r) for r in run_ids]
    rows: dict[str, list[Any]] = {}
    for key in dict.fromkeys(k for r in runs for k in r.metrics):
        rows[f"metric {key}"] = [r.metrics.get(key) for r in runs]
    for key in dict.fromkeys(k for r in runs for k in r.params):
        values = [r.params.get(key) for r in runs]
        if len({repr(v) for v in values}) > 1:
            rows[f"param {key}"] = values
    hashes = [(r.data.get("fingerprint") or {}).get("sha256") for r in runs]
    rows["data sha256"] = [h[:12] if h else None for h in hashes]
    rows["data rows"] = [(r.data.get("fingerprint") or {}).get("rows") for r in runs]
    if json_output:
        print_json({"runs": [r.run_id for r in runs], "rows": rows, "same_data": len(set(hashes)) == 1})
        return
    table = Table(title="Runs compared" + (" (same data)" if len(set(hashes)) == 1 else " (different data)"))
    table.add_column("")
    for run in runs:
        table.add_column(run.run_id, justify="right")
    for key, values in rows.items():
        table.add_row(key, *(_number(v) for v in values))
    stdout.print(table)
