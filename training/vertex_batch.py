"""Batch prediction on Vertex AI: a ``BatchPredictionJob`` for a version of the Vertex AI registry.

Vertex AI runs the model's CPR serving image on its own machines and sends the rows to
``/predict`` in the online request format, so the same ``LeadScoringPredictor`` scores them.
Sources and sinks:

- ``gs://…/*.jsonl``: one instance (an object keyed by feature name) per line; or
  ``bq://project.dataset.table``: each row becomes an object keyed by column name.
- ``gs://bucket/prefix``: JSONL result files ``{"instance": …, "prediction": …}``; or
  ``bq://project[.dataset]``: a BigQuery table of the input columns plus the prediction.

CSV is not offered: Vertex AI sends CSV rows as arrays without column names. Parquet is not a
Vertex AI batch input format; ``leadscore batch-predict`` reads it locally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from training.deploy import DEFAULT_MACHINE_TYPE, DEFAULT_MAX_REPLICAS, DEFAULT_MIN_REPLICAS
from training.errors import LeadscoreError


class VertexBatchError(LeadscoreError):
    """A Vertex AI batch prediction job cannot be submitted (unsupported source or sink...)."""


@dataclass
class VertexBatchConfig:
    """Where from, where to and on what.

    Attributes:
        source: ``gs://…/*.jsonl`` or ``bq://project.dataset.table``.
        destination: ``gs://bucket/prefix`` or ``bq://project[.dataset]``.
        machine_type: Machine type of the workers.
        starting_replicas: Workers at start.
        max_replicas: Workers at most.
        wait: Block until the job finishes.
    """

    source: str
    destination: str
    machine_type: str = DEFAULT_MACHINE_TYPE
    starting_replicas: int = DEFAULT_MIN_REPLICAS
    max_replicas: int = DEFAULT_MAX_REPLICAS
    wait: bool = False


def job_io(source: str, destination: str) -> dict[str, Any]:
    """The ``BatchPredictionJob`` arguments for a source and a sink.

    Raises:
        VertexBatchError: A source or sink Vertex AI cannot use with this model.
    """
    if source.startswith("gs://") and source.lower().endswith((".jsonl", ".json", ".ndjson")):
        arguments: dict[str, Any] = {"gcs_source": source, "instances_format": "jsonl"}
    elif source.startswith("bq://") and source[len("bq://"):].count(".") == 2:
        arguments = {"bigquery_source": source, "instances_format": "bigquery"}
    else:
        raise VertexBatchError(f"{source}: a Vertex AI batch job reads gs://…/*.jsonl or bq://project.dataset.table "
                               "(CSV rows reach the model without column names; use batch-predict locally for "
                               "Parquet and CSV)")
    if destination.startswith("gs://"):
        arguments.update(gcs_destination_prefix=destination, predictions_format="jsonl")
    elif destination.startswith("bq://") and destination[len("bq://"):].count(".") <= 1:
        arguments.update(bigquery_destination_prefix=destination, predictions_format="bigquery")
    else:
        raise VertexBatchError(f"{destination}: a Vertex AI batch job writes to gs://bucket/prefix or "
                               "bq://project[.dataset]")
    return arguments


def submit_batch_job(registry: Any, ref: str, config: VertexBatchConfig) -> Any:
    """Submits a Vertex AI batch prediction job for a registered version.

    Args:
        registry: A ``training.registry.vertex.VertexRegistry``.
        ref: ``name@alias`` or ``name@1.2.3`` in that registry.
        config: Source, sink and machines.

    Returns:
        The ``aiplatform.BatchPredictionJob`` (finished when ``config.wait``).

    Raises:
        VertexBatchError: Unsupported source or sink, or a version without a Vertex AI model.
        training.errors.RegistryError: The reference names no version of the registry.
    """
    arguments = job_io(config.source, config.destination)
    version = registry.resolve(ref)
    if not version.resource_name:
        raise VertexBatchError(f"{version.ref} has no Vertex AI model resource; register it on Vertex AI first")
    aiplatform = registry._aiplatform()  # the registry's SDK set-up (project, location, credentials, REST)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    job = aiplatform.BatchPredictionJob.submit(
        job_display_name=f"{version.name}-{version.version}-batch-{stamp}",
        model_name=version.resource_name,
        machine_type=config.machine_type,
        starting_replica_count=config.starting_replicas,
        max_replica_count=config.max_replicas,
        labels={"managed-by": "leadscore", "leadscore-model": version.name},
        **arguments,
    )
    if config.wait:
        job.wait_for_completion()
    return job
