"""Serving commands beyond ``predict``: ``explain``, ``batch-predict``, ``image build``/``image dockerfile``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rich.table import Table

from training.cli.app import app, console, print_json, stdout
from training.cli.core import ModelRef, predict_in_process, read_instances
from training.errors import LeadscoreError
from training.refs import resolve_model

image_app = typer.Typer(help="The Vertex AI CPR serving image.", no_args_is_help=True)
app.add_typer(image_app, name="image")



@app.command()
def explain(
    model: ModelRef,
    instance: Annotated[str, typer.Option(help="JSON file with one lead ('-' for stdin).")],
    json_output: Annotated[bool, typer.Option("--json", help="Print the explanation as JSON.")] = False,
) -> None:
    """Explain one lead's score: exact per-feature contributions (TreeSHAP), largest first."""
    from training.client import LeadExplanation

    request = read_instances(instance)
    leads = request.get("instances")
    if not isinstance(leads, list) or len(leads) != 1:
        raise LeadscoreError(f"{instance}: explain takes exactly one lead")
    request["parameters"] = {**(request.get("parameters") or {}), "explain": True}
    explanation = LeadExplanation.from_prediction(predict_in_process(model, request)["predictions"][0])
    if json_output:
        print_json({"score": explanation.score, "base_value": explanation.base_value,
                    "attributions": dict(explanation.ranked())})
        return
    lead = leads[0]
    table = Table(title=f"score {explanation.score:.4f} = base value {explanation.base_value:.4f} + contributions")
    table.add_column("feature")
    table.add_column("value")
    table.add_column("contribution", justify="right")
    for feature, value in explanation.ranked():
        style = "green" if value > 0 else "red" if value < 0 else "dim"
        table.add_row(feature, str(lead.get(feature, "(missing)")), f"[{style}]{value:+.4f}[/]")
    stdout.print(table)


@app.command("batch-predict")
def batch_predict(
    model: ModelRef,
    input_path: Annotated[str, typer.Option("--input", help="Leads to score: a .parquet, .csv or .jsonl file.")],
    output: Annotated[str, typer.Option(help="Result file: .jsonl (Vertex batch prediction rows) or .parquet.")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows scored at a time (memory is proportional).")] = (
        100_000
    ),
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a whole table of leads; every input row gets a prediction or an error row."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.batch import batch_predict as run_batch

    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("scoring", total=None)
        result = run_batch(resolve_model(model), input_path, output, chunk_rows=chunk_rows,
                           progress=lambda done, total: bar.update(task, completed=done, total=total))
    summary = {"output": str(result.output), "rows": result.rows, "errors": result.errors,
               "seconds": round(result.seconds, 3), "rows_per_second": round(result.rows_per_second)}
    if json_output:
        print_json(summary)
        return
    errors = f", [red]{result.errors:,} error rows[/]" if result.errors else ""
    stdout.print(f"scored {result.rows:,} rows in {result.seconds:.1f} s "
                 f"({result.rows_per_second:,.0f} rows/s){errors} → [bold]{result.output}[/]")


BaseImage = Annotated[
    Optional[str],
    typer.Option(help="Base image with python and pip. Default: python:X.Y-slim of this interpreter."),
]


@image_app.command("build")
def image_build(
    model: ModelRef,
    image: Annotated[str, typer.Option(help="Image URI to tag, e.g. us-docker.pkg.dev/PROJECT/REPO/leadscore:1.0.0.")],
    base_image: BaseImage = None,
    context: Annotated[
        Optional[Path], typer.Option(help="Stage the build context in this (empty) directory and keep it.")
    ] = None,
) -> None:
    """Build the CPR serving image (LocalModel.build_cpr_model; needs a Docker API, e.g. podman)."""
    from training.image import DEFAULT_BASE_IMAGE, build_image

    # docker build's output is logged by the SDK at INFO; show it.
    logging.getLogger("google.cloud.aiplatform.docker_utils").setLevel(logging.INFO)
    console.print(f"building {image} (linux/amd64) for {model}")
    staged = build_image(resolve_model(model), image, base_image or DEFAULT_BASE_IMAGE, context_dir=context)
    pins = ", ".join(f"{name}=={version}" for name, version in staged.pins.items())
    console.print(f"built [bold]{image}[/] ({pins})")


@image_app.command("dockerfile")
def image_dockerfile(
    model: ModelRef,
    image: Annotated[str, typer.Option(help="Image URI the Dockerfile is built for.")] = "leadscore-serving:local",
    base_image: BaseImage = None,
) -> None:
    """Print the Dockerfile `image build` would build (no Docker needed)."""
    from training.image import DEFAULT_BASE_IMAGE, dockerfile

    sys.stdout.write(dockerfile(resolve_model(model), image, base_image or DEFAULT_BASE_IMAGE))
