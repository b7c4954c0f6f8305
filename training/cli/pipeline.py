"""``leadscore run`` (the main job) and ``leadscore pipeline compile|schedule``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from training.cli.app import app, console, print_json, stdout

pipeline_app = typer.Typer(help="The KFP v2 pipeline: compile it, schedule it on Vertex AI.", no_args_is_help=True)
app.add_typer(pipeline_app, name="pipeline")

ConfigFile = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file (see README).")]


def _load(config_file: Path | None):
    from training.config import LeadscoreConfig, load_config

    return load_config(config_file) if config_file else LeadscoreConfig()


@app.command()
def run(
    config_file: ConfigFile = None,
    engine: Annotated[
        Optional[str], typer.Option(help="local (in-process), kfp-local (the KFP DAG via kfp.local) or vertex "
                                         "(Vertex AI Pipelines). Default: [pipeline] engine, else local.")
    ] = None,
    data: Annotated[Optional[str], typer.Option(help="Data source; none: synthesise leads.")] = None,
    target: Annotated[Optional[str], typer.Option(help="Target column.")] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(help="Column never used as a feature (repeatable).")] = None,
    tune: Annotated[Optional[int], typer.Option(min=0, help="Optuna tuning trials before the final fit.")] = None,
    synth_rows: Annotated[Optional[int], typer.Option(min=100, help="Leads to synthesise without a source.")] = None,
    synth_seed: Annotated[Optional[int], typer.Option(help="Seed of the synthetic leads.")] = None,
    min_improvement: Annotated[Optional[float], typer.Option(help="RMSE gain a challenger needs.")] = None,
    require_significance: Annotated[
        Optional[bool], typer.Option("--require-significance/--no-require-significance",
                                     help="Promote only if the paired-bootstrap interval excludes zero.")
    ] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="Vertex AI endpoint to deploy a promoted model to.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Run the main job: ingest → validate → preprocess → train → evaluate → register/promote → deploy."""
    from training.job import run_job

    config = _load(config_file)
    overrides = {
        ("data", "source"): data, ("data", "target"): target, ("data", "exclude"): list(exclude) if exclude else None,
        ("train", "tune_trials"): tune, ("pipeline", "synth_rows"): synth_rows,
        ("pipeline", "synth_seed"): synth_seed, ("registry", "min_improvement"): min_improvement,
        ("registry", "require_significance"): require_significance, ("serving", "endpoint"): endpoint,
    }
    for (section, key), value in overrides.items():
        if value is not None:  # a flag given on the command line wins over the config file
            setattr(getattr(config, section), key, value)
    engine = engine or config.pipeline.engine
    with console.status(f"leadscore run ({engine})") as status:
        def progress(message: str) -> None:
            console.print(f"[green]›[/] {message}")
            status.update(message)

        summary = run_job(config, engine, progress)
    if json_output:
        print_json(summary.to_dict())
        return
    print_summary(summary)


def print_summary(summary) -> None:
    """The end-of-run summary: rows, metrics, version, the promotion decision and why, artifacts."""
    if summary.pipeline_job:
        stdout.print(f"submitted Vertex AI pipeline job [bold]{summary.pipeline_job}[/]")
        return
    event = summary.decision.get("event", {})
    table = Table(title="leadscore run", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    if summary.rows is not None:
        table.add_row("rows", f"{summary.rows:,}")
    metrics = summary.metrics
    table.add_row("held-out metrics", ", ".join(f"{k.upper()} {metrics[k]:.4f}" for k in ("rmse", "mae", "r2")
                                                 if k in metrics))
    table.add_row("version", f"{event.get('name')}@{event.get('version')}")
    champion = event.get("champion_rmse")
    table.add_row("decision", f"{event.get('action')}: challenger RMSE {event.get('challenger_rmse'):.5f}"
                  + (f" vs champion {event.get('previous_champion')} RMSE {champion:.5f}" if champion is not None
                     else ""))
    table.add_row("why", str(event.get("reason")))
    table.add_row("artifacts", str(summary.artifact_uri))
    if summary.deployment:
        table.add_row("deployment", summary.deployment)
    stdout.print(table)


@pipeline_app.command("compile")
def compile_command(
    out: Annotated[Path, typer.Option(help="YAML file to write.")] = Path("lead_scoring_pipeline.yaml"),
    training_image: Annotated[
        Optional[str], typer.Option(help="Image the components run in (default: $LEADSCORE_TRAINING_IMAGE).")
    ] = None,
) -> None:
    """Compile the KFP v2 pipeline to YAML (for Vertex AI Pipelines or any KFP backend)."""
    from training.job import compile_pipeline

    path = compile_pipeline(out, training_image)
    console.print(f"compiled the pipeline to [bold]{path}[/]")


@pipeline_app.command("schedule")
def schedule_command(
    cron: Annotated[str, typer.Option(help="Cron expression, e.g. '0 3 * * *' (daily at 03:00 UTC).")],
    config_file: ConfigFile = None,
) -> None:
    """Create a Vertex AI pipeline schedule (PipelineJobSchedule) that runs the main job on CRON."""
    from training.job import schedule_vertex

    config = _load(config_file)
    name = schedule_vertex(config, cron)
    console.print(f"created schedule [bold]{name}[/] ({cron})")
    print_json({"schedule": name, "cron": cron})
