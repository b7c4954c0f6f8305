"""``leadscore train`` (data → evaluated, tracked artifact directory) and ``leadscore tuning-spec``."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from training.cli.app import app, console, print_json, stdout
from training.errors import ConfigError

_DATA_HELP = ("Training data: a .csv/.parquet path, duckdb:///file.db?table=NAME or bq://project.dataset.table "
              "(default: \\[data] source of --config).")
_HYPER = "Hyperparameters (override --config)"
_TIME_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]
_DATA = "Data (override --config)"


def _hyper(name: str, help_text: str, minimum: float | None = None) -> Any:
    # Vertex AI tuning trials pass --max_depth=5: accept the underscore spelling too.
    return typer.Option(f"--{name.replace('_', '-')}", f"--{name}", help=help_text, min=minimum,
                        rich_help_panel=_HYPER)


def build_config(
    config_file: Path | None,
    *,
    data: str | None = None,
    target: str | None = None,
    exclude: list[str] | None = None,
    columns: list[str] | None = None,
    sample_percent: float | None = None,
    window_column: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    missing_tokens: list[str] | None = None,
    min_rows: int | None = None,
    tune: int | None = None,
    device: str | None = None,
    tracking: str | None = None,
    experiment: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
) -> Any:
    """The configuration file's values (or the defaults) with the given flags applied on top.

    Returns:
        A ``training.config.LeadscoreConfig``.

    Raises:
        ConfigError: A window bound without a window column.
    """
    from training.config import LeadscoreConfig, WindowSection, load_config
    from training.tracking import TrackingConfig

    cfg = load_config(config_file) if config_file else LeadscoreConfig()
    section = cfg.data
    given = {"source": data, "target": target, "exclude": exclude, "columns": columns,
             "sample_percent": sample_percent, "missing_tokens": missing_tokens, "min_rows": min_rows}
    section = dataclasses.replace(section, **{k: v for k, v in given.items() if v is not None})
    if window_column or since or until:
        window = section.window or (WindowSection(window_column) if window_column else None)
        if window is None:
            raise ConfigError("--since/--until need --window-column (or [data.window] column in the config)")
        section.window = dataclasses.replace(window, column=window_column or window.column,
                                             start=since or window.start, end=until or window.end)
    hyper = dataclasses.replace(cfg.train.hyperparameters,
                                **{k: v for k, v in (hyperparameters or {}).items() if v is not None})
    train_section = dataclasses.replace(cfg.train, hyperparameters=hyper)
    if tune is not None:
        train_section.tune_trials = tune
    if device is not None:
        train_section.device = device
    track = cfg.tracking
    if tracking is not None or experiment is not None:
        track = TrackingConfig(**{**dataclasses.asdict(track), "backend": tracking or track.backend,
                                  "experiment": experiment or track.experiment})
    return dataclasses.replace(cfg, data=section, train=train_section, tracking=track)


@app.command()
def train(
    data: Annotated[Optional[str], typer.Option(help=_DATA_HELP)] = None,
    out: Annotated[Path, typer.Option(help="Artifact directory to write (replaced if it exists).")] = Path("model"),
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="TOML config file (\\[data], \\[train], \\[tracking]); flags override it.")] = None,
    target: Annotated[Optional[str], typer.Option(
        help="Target column (0..1; yes/no and booleans map to 1/0). Default: conversion_probability.",
        rich_help_panel=_DATA)] = None,
    exclude: Annotated[Optional[list[str]], typer.Option(
        help="Column never used as a feature (repeatable), e.g. leakage columns.", rich_help_panel=_DATA)] = None,
    column: Annotated[Optional[list[str]], typer.Option(
        help="Read only this column (repeatable; the target is always read).", rich_help_panel=_DATA)] = None,
    sample_percent: Annotated[Optional[float], typer.Option(
        min=0.0, max=100.0, help="Read about this percentage of the table (TABLESAMPLE SYSTEM: on BigQuery only "
        "the sampled blocks are billed).", rich_help_panel=_DATA)] = None,
    window_column: Annotated[Optional[str], typer.Option(
        help="TIMESTAMP column of an incremental window.", rich_help_panel=_DATA)] = None,
    since: Annotated[Optional[datetime], typer.Option(
        formats=_TIME_FORMATS, help="Window start (inclusive; UTC unless an offset such as +02:00 is given).",
        rich_help_panel=_DATA)] = None,
    until: Annotated[Optional[datetime], typer.Option(
        formats=_TIME_FORMATS, help="Window end (exclusive).", rich_help_panel=_DATA)] = None,
    missing_token: Annotated[Optional[list[str]], typer.Option(
        help="Category value meaning 'not given' (repeatable). Default: Select.", rich_help_panel=_DATA)] = None,
    min_rows: Annotated[Optional[int], typer.Option(
        min=1, help="Fewest labelled rows to train on (default 100).", rich_help_panel=_DATA)] = None,
    tune: Annotated[Optional[int], typer.Option(
        min=0, help="Tune with N optuna TPE trials (early stopping on a validation split of the training rows), "
        "then train the best on the whole training split.")] = None,
    device: Annotated[Optional[str], typer.Option(help="XGBoost device: cpu or cuda (GPU machines).")] = None,
    tracking: Annotated[Optional[str], typer.Option(
        help="Where runs are recorded: local (SQLite in the state directory) or vertex (also Vertex AI "
        "Experiments).")] = None,
    experiment: Annotated[Optional[str], typer.Option(help="Experiment name (default lead-scoring).")] = None,
    n_estimators: Annotated[Optional[int], _hyper("n_estimators", "Trees.", 1)] = None,
    max_depth: Annotated[Optional[int], _hyper("max_depth", "Tree depth.", 1)] = None,
    learning_rate: Annotated[Optional[float], _hyper("learning_rate", "Learning rate (eta).", 0.0)] = None,
    subsample: Annotated[Optional[float], _hyper("subsample", "Row subsample per tree.", 0.0)] = None,
    colsample_bytree: Annotated[Optional[float], _hyper("colsample_bytree", "Column subsample per tree.", 0.0)] = None,
    min_child_weight: Annotated[Optional[float], _hyper("min_child_weight", "Minimum hessian per leaf.", 0.0)] = None,
    reg_lambda: Annotated[Optional[float], _hyper("reg_lambda", "L2 regularisation.", 0.0)] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    register: Annotated[bool, typer.Option(
        help="Register the model and apply the promotion policy (see `leadscore registry --help`).")] = False,
    min_improvement: Annotated[float, typer.Option(
        min=0.0, help="With --register: how much lower the RMSE must be to replace the champion.")] = 0.0,
    require_significance: Annotated[bool, typer.Option(
        help="With --register: also require the paired-bootstrap 95 % interval of the improvement to exclude 0.")] = False,
) -> None:
    """Train and evaluate a model, record the run, write its artifact directory (and register it with --register).

    Bad data (missing or non-numeric target, too few rows, duplicate column names, an entirely missing feature) stops the run with one line and writes nothing.
    """
    from training.train import train as run_training

    settings = build_config(
        config, data=data, target=target, exclude=exclude, columns=column, sample_percent=sample_percent,
        window_column=window_column, since=since, until=until, missing_tokens=missing_token, min_rows=min_rows,
        tune=tune, device=device, tracking=tracking, experiment=experiment,
        hyperparameters={"n_estimators": n_estimators, "max_depth": max_depth, "learning_rate": learning_rate,
                         "subsample": subsample, "colsample_bytree": colsample_bytree,
                         "min_child_weight": min_child_weight, "reg_lambda": reg_lambda},
    )
    with console.status("training") as status:
        result = run_training(settings.train_config(out), progress=lambda message: status.update(message))
    registration = None
    if register:
        from training.cli.registry import print_registration, register_training

        registration = register_training(result, min_improvement, require_significance)
    if json_output:
        print_json({"out": str(result.out), "run_id": result.run_id, "metrics": result.metrics,
                    "dropped_columns": result.spec.dropped, "warnings": result.warnings,
                    "params": dataclasses.asdict(result.params) if result.params else None,
                    "tuning_trials": len(result.trials),
                    "registration": registration.to_dict() if registration else None})
        return
    _print_result(result)
    if registration:
        print_registration(registration)


def _print_result(result: Any) -> None:
    m = result.metrics
    table = Table(title=f"Test metrics ({result.rows_test:,} held-out rows)")
    for name in ("RMSE", "95 % interval", "MAE", "R²"):
        table.add_column(name, justify="right")
    table.add_row(f"{m['rmse']:.4f}", f"{m['rmse_ci95_low']:.4f} – {m['rmse_ci95_high']:.4f}", f"{m['mae']:.4f}",
                  f"{m['r2']:.4f}")
    stdout.print(table)
    if result.trials:
        stdout.print(f"tuned: {len(result.trials)} trials, best validation RMSE {m['validation_rmse']:.4f} "
                     f"→ depth {result.params.max_depth}, learning rate {result.params.learning_rate:.3g}, "
                     f"{result.params.n_estimators} trees")
    importance = result.evaluation.get("feature_importance", {})
    if importance:
        top = ", ".join(f"{escape(name)} {v['share']:.0%}" for name, v in list(importance.items())[:5])
        stdout.print(f"top features (gain): {top}")
    for column, reason in result.spec.dropped.items():
        stdout.print(f"[dim]dropped {escape(column)}: {escape(reason)}[/]")
    for warning in result.warnings:
        stdout.print(f"[yellow]warning:[/] {escape(warning)}")
    stdout.print(f"run [bold]{result.run_id}[/] → artifacts: [bold]{escape(str(result.out))}[/] "
                 f"({result.seconds:.1f} s)")


@app.command("tuning-spec")
def tuning_spec(
    image: Annotated[str, typer.Option(help="Training image of each trial (runs `leadscore train`).")],
    data: Annotated[Optional[str], typer.Option(help=_DATA_HELP)] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML config file.")] = None,
    trials: Annotated[int, typer.Option(min=1, help="maxTrialCount.")] = 20,
    parallel: Annotated[int, typer.Option(min=1, help="parallelTrialCount.")] = 2,
    machine_type: Annotated[str, typer.Option(help="Machine type of each trial.")] = "n1-standard-8",
    accelerator: Annotated[Optional[str], typer.Option(
        help="Accelerator per trial (e.g. NVIDIA_TESLA_T4); trials then train with --device cuda.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="Write the JSON here instead of standard output.")] = None,
) -> None:
    """Emit the tuning search space as a Vertex AI HyperparameterTuningJob (REST JSON); nothing is submitted."""
    from training.tune import vertex_tuning_job

    settings = build_config(config, data=data).data
    if not settings.source:
        raise ConfigError("no data source: pass --data or set [data] source in --config")
    args = ["train", "--data", settings.source, "--target", settings.target, "--out", "/tmp/model", "--json"]
    for column in settings.exclude:
        args += ["--exclude", column]
    if accelerator:
        args += ["--device", "cuda"]
    job = vertex_tuning_job(trials, parallel, image, args, command=["leadscore"], machine_type=machine_type,
                            accelerator=accelerator)
    if out:
        out.write_text(json.dumps(job, indent=2) + "\n")
        console.print(f"wrote the HyperparameterTuningJob spec to [bold]{escape(str(out))}[/]")
    else:
        print_json(job)
