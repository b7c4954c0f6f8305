"""Serving commands beyond ``predict``: ``explain``, ``batch-predict``, ``deploy``, ``image build``/``dockerfile``."""

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
from training.registry.config import DEFAULT_REGION, PROJECT_ENV, REGION_ENV, REGISTRY_URI_ENV, VERTEX_ENDPOINT_ENV

image_app = typer.Typer(help="The Vertex AI CPR serving image.", no_args_is_help=True)
app.add_typer(image_app, name="image")

# Vertex AI settings shared by `deploy` and `batch-predict --vertex` (the environment variables
# are the registry's: the version to deploy is looked up in the Vertex AI registry).
Project = Annotated[Optional[str], typer.Option(envvar=PROJECT_ENV, help="Google Cloud project.")]
Location = Annotated[str, typer.Option(envvar=REGION_ENV, help="Vertex AI region.")]
RegistryUri = Annotated[Optional[str], typer.Option(
    envvar=REGISTRY_URI_ENV, help="The Vertex AI registry's gs://bucket/prefix (where versions are looked up).")]
ApiEndpoint = Annotated[Optional[str], typer.Option(envvar=VERTEX_ENDPOINT_ENV, help="Vertex AI API endpoint override.")]
MachineType = Annotated[str, typer.Option(help="Machine type.")]


def _vertex_registry(project: str | None, location: str, registry_uri: str | None, api_endpoint: str | None):
    from training.registry.config import VERTEX, RegistryConfig, open_registry

    return open_registry(RegistryConfig(backend=VERTEX, project=project, location=location,
                                        registry_uri=registry_uri, api_endpoint=api_endpoint))


@app.command()
def explain(
    model: ModelRef,
    instance: Annotated[str, typer.Option(help="One lead: a JSON file, '-' for stdin, or the JSON itself.")],
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
    input_path: Annotated[str, typer.Option(
        "--input", help="Leads to score: a .parquet, .csv or .jsonl file, duckdb:///file.db?table=NAME or "
                        "bq://project.dataset.table; with --vertex gs://…/*.jsonl or bq://project.dataset.table.")],
    output: Annotated[str, typer.Option(help="Result: a .jsonl (Vertex batch prediction rows) or .parquet file; "
                                             "with --vertex gs://bucket/prefix or bq://project[.dataset].")],
    chunk_rows: Annotated[int, typer.Option(min=1, help="Rows scored at a time (memory is proportional).")] = (
        100_000
    ),
    vertex: Annotated[bool, typer.Option(
        "--vertex", help="Submit a Vertex AI BatchPredictionJob for the model's Vertex AI registry version.")] = False,
    machine_type: MachineType = "n1-standard-2",
    max_replicas: Annotated[int, typer.Option(min=1, help="Most workers (--vertex).")] = 2,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for the Vertex AI job to finish.")] = False,
    project: Project = None,
    location: Location = DEFAULT_REGION,
    registry_uri: RegistryUri = None,
    api_endpoint: ApiEndpoint = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Score a whole table of leads; every input row gets a prediction or an error row."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from training.batch import batch_predict as run_batch

    if vertex:
        from training.vertex_batch import VertexBatchConfig, submit_batch_job

        registry = _vertex_registry(project, location, registry_uri, api_endpoint)
        config = VertexBatchConfig(input_path, output, machine_type=machine_type, max_replicas=max_replicas,
                                   wait=wait)
        with console.status("waiting for the Vertex AI batch prediction job" if wait else "submitting"):
            job = submit_batch_job(registry, model, config)
        summary = {"job": job.resource_name, "state": job.state.name, "input": input_path, "output": output}
        if json_output:
            print_json(summary)
        else:
            stdout.print(f"batch prediction job [bold]{job.resource_name}[/] ({job.state.name}): "
                         f"{input_path} → {output}")
        return

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


@app.command()
def deploy(
    model: Annotated[str, typer.Option("--model", "-m", help="Version of the Vertex AI registry (name@alias or "
                                                            "name@1.2.3), or an artifact directory, uploaded "
                                                            "to it first (without the champion alias).")],
    endpoint: Annotated[str, typer.Option(help="Endpoint display name (created if new), resource name or ID.")],
    traffic: Annotated[int, typer.Option(min=0, max=100, help="Percent of traffic for a newly deployed version "
                                                              "(the canary); the first version gets 100.")] = 10,
    promote_traffic: Annotated[bool, typer.Option(
        "--promote-traffic", help="Send 100 % of the traffic to this version.")] = False,
    undeploy_old: Annotated[bool, typer.Option(
        "--undeploy-old", help="Undeploy all but the two newest deployed versions.")] = False,
    machine_type: MachineType = "n1-standard-2",
    min_replicas: Annotated[int, typer.Option(min=1, help="Replicas always running.")] = 1,
    max_replicas: Annotated[int, typer.Option(min=1, help="Replicas under load.")] = 2,
    log_table: Annotated[Optional[str], typer.Option(
        help="bq://project.dataset.table for request-response logging (new endpoint); Vertex AI's default "
             "table when omitted.")] = None,
    log_sampling_rate: Annotated[float, typer.Option(help="Share of requests logged (new endpoint).")] = 1.0,
    request_logging: Annotated[bool, typer.Option(
        help="Log requests and responses to BigQuery (new endpoint), for `leadscore monitor`.")] = True,
    project: Project = None,
    location: Location = DEFAULT_REGION,
    registry_uri: RegistryUri = None,
    api_endpoint: ApiEndpoint = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Deploy a registered version to a Vertex AI endpoint with a traffic split (canary)."""
    from training.deploy import DeployConfig
    from training.deploy import deploy as run_deploy

    config = DeployConfig(
        endpoint=endpoint, traffic=traffic, machine_type=machine_type, min_replicas=min_replicas,
        max_replicas=max_replicas, request_logging=request_logging, logging_table=log_table,
        logging_sampling_rate=log_sampling_rate, promote_traffic=promote_traffic, undeploy_old=undeploy_old,
    )
    registry = _vertex_registry(project, location, registry_uri, api_endpoint)
    with console.status(f"deploying {model} to {endpoint} (this takes minutes on Vertex AI)"):
        result = run_deploy(registry, model, config)
    if json_output:
        print_json(result.to_dict())
        return
    table = Table(title=f"{result.endpoint}" + (" (created)" if result.created_endpoint else ""))
    table.add_column("deployed model")
    table.add_column("traffic", justify="right")
    for deployed_id, share in sorted(result.traffic_split.items(), key=lambda item: -item[1]):
        label = f"{deployed_id} ({result.version.ref})" if deployed_id == result.deployed_model_id else deployed_id
        table.add_row(label, f"{share} %")
    stdout.print(table)
    if result.undeployed:
        stdout.print(f"undeployed: {', '.join(result.undeployed)}")
    stdout.print(f"request-response log: {result.logging_table or 'off'}")


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
