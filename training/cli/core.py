"""Core commands: ``data synth``, ``serve`` and ``predict`` (``train`` is in ``training/cli/train.py``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from training.cli.app import app, console, print_json
from training.errors import LeadscoreError
from training.refs import resolve_model

data_app = typer.Typer(help="Lead data utilities.", no_args_is_help=True)
app.add_typer(data_app, name="data")

ModelRef = Annotated[
    str,
    typer.Option(
        "--model", "--artifacts", "-m",
        help="Model reference: an artifact directory, a gs:// URI, name@alias or name@1.2.3.",
    ),
]


@data_app.command("synth")
def data_synth(
    rows: Annotated[int, typer.Option(min=1, help="Number of leads to generate.")] = 50_000,
    out: Annotated[Path, typer.Option(help="Output file; .csv or .parquet decides the format.")] = Path(
        "leads.parquet"
    ),
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same file.")] = 42,
) -> None:
    """Generate synthetic leads in the classic lead-scoring schema."""
    from training.synth import generate_leads, write_table

    with console.status(f"generating {rows:,} leads"):
        path = write_table(generate_leads(rows, seed=seed), out)
    console.print(f"wrote {rows:,} leads to [bold]{path}[/]")


@app.command()
def serve(
    model: ModelRef,
    host: Annotated[str, typer.Option(help="Interface to bind (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (AIP_HTTP_PORT).")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
    prediction_log_rate: Annotated[float, typer.Option(
        min=0.0, max=1.0, envvar="LEADSCORE_PREDICTION_LOG_RATE",
        help="Share of requests logged to <state dir>/predictions (or $LEADSCORE_PREDICTION_LOG_DIR) for "
             "'leadscore monitor drift'; 0 turns logging off.")] = 0.8,
) -> None:
    """Serve a model with Vertex AI's CPR model server (POST /predict, GET /health)."""
    from predictor.artifacts import open_artifacts
    from predictor.prediction_log import DIR_ENV, RATE_ENV
    from training.serve import serve as run_server
    from training.state import home_dir

    artifacts = resolve_model(model)
    # Fail here with a clear message rather than inside the server's start-up.
    open_artifacts(artifacts).cleanup()
    console.print(f"serving {artifacts} on http://{host}:{port} (POST /predict, GET /health)")
    # The server processes read these (predictor/prediction_log.py).
    os.environ[RATE_ENV] = str(prediction_log_rate)
    if prediction_log_rate > 0:
        os.environ.setdefault(DIR_ENV, str((home_dir() / "predictions").absolute()))
        console.print(f"logging {prediction_log_rate:.0%} of requests to {os.environ[DIR_ENV]}")
    run_server(artifacts, host=host, port=port, workers=workers)


def read_instances(source: str) -> dict[str, Any]:
    """Reads a prediction request: a request object, a list or one instance.

    Args:
        source: A JSON file, ``-`` for stdin, or the JSON itself (it starts with ``{`` or ``[``).

    Raises:
        LeadscoreError: The file cannot be read or the text is not JSON.
    """
    if source == "-":
        text = sys.stdin.read()
    elif source.lstrip().startswith(("{", "[")):
        text, source = source, "the given JSON"
    else:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise LeadscoreError(f"{source}: cannot read it ({exc.strerror or exc})") from exc
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LeadscoreError(f"{source}: not valid JSON ({exc})") from exc
    if isinstance(payload, list):
        return {"instances": payload}
    if isinstance(payload, dict) and "instances" not in payload:
        return {"instances": [payload]}
    return payload


@app.command()
def predict(
    model: ModelRef,
    instances: Annotated[str, typer.Option(
        help="A request, a list of leads or one lead: a JSON file, '-' for stdin, or the JSON itself.")],
) -> None:
    """Score leads in-process with the serving code path and print the JSON response."""
    print_json(predict_in_process(model, read_instances(instances)))


def predict_in_process(model: str, request: dict[str, Any]) -> dict[str, Any]:
    """Answers a prediction request with ``LeadScoringPredictor`` in this process (the server's code path).

    Raises:
        LeadscoreError: The request is malformed (the message is the server's 4xx detail).
    """
    from fastapi import HTTPException

    from predictor.predictor import LeadScoringPredictor

    predictor = LeadScoringPredictor()
    predictor.load(resolve_model(model))
    try:
        return predictor.postprocess(predictor.predict(predictor.preprocess(request)))
    except HTTPException as exc:
        raise LeadscoreError(str(exc.detail)) from exc
