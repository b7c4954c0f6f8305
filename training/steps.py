"""The main job's steps, each callable on its own with file inputs and outputs.

The KFP components in ``pipeline/components/`` are thin wrappers over these functions, and the
``local`` engine of ``leadscore run`` calls them in-process, in the same order: one
implementation, whichever engine runs it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from training.errors import DataError
from training.sources import IngestOptions, ingest, parse_source
from training.train import TrainConfig, TrainResult, XGBParams, split_rows, train
from training.validation import validate

DEFAULT_SYNTH_ROWS = 20_000


@dataclass
class StepData:
    """Where the data comes from and what counts in it (the ``[data]`` part of the job).

    Attributes:
        source: A data source URI; ``None`` synthesises ``synth_rows`` leads.
        target: The target column.
        exclude: Columns never used as features.
        sample_percent: ``TABLESAMPLE SYSTEM`` percentage (all rows when ``None``).
        min_rows: Fewest labelled rows to train on.
        synth_rows: Leads to synthesise when there is no source.
        synth_seed: Seed of the synthetic leads.
    """

    source: str | None = None
    target: str = "conversion_probability"
    exclude: list[str] = field(default_factory=list)
    sample_percent: float | None = None
    min_rows: int = 100
    synth_rows: int = DEFAULT_SYNTH_ROWS
    synth_seed: int = 42


def ingest_step(data: StepData, out: str | Path) -> int:
    """Reads the source (or synthesises leads) into a Parquet file.

    Returns:
        The number of rows written.
    """
    if data.source:
        table = ingest(parse_source(data.source), IngestOptions(sample_percent=data.sample_percent))
    else:
        from training.synth import generate_leads

        table = generate_leads(data.synth_rows, seed=data.synth_seed)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    return table.num_rows


def validate_step(dataset: str | Path, data: StepData) -> dict[str, Any]:
    """Validates a dataset before anything is trained or registered.

    Returns:
        A report: rows, labelled rows, features by kind, dropped columns and warnings.

    Raises:
        DataError: The data cannot be trained on (the message names the problem).
    """
    validated = validate(pq.read_table(dataset), data.target, data.exclude, data.min_rows)
    spec = validated.spec
    return {
        "rows": int(len(validated.target)),
        "labelled": int(len(validated.labelled)),
        "numeric": spec.numeric,
        "boolean": spec.boolean,
        "categorical": spec.categorical,
        "dropped": spec.dropped,
        "warnings": validated.warnings,
    }


def split_step(
    dataset: str | Path, train_out: str | Path, test_out: str | Path, target: str,
    test_size: float = 0.2, random_state: int = 42,
) -> tuple[int, int]:
    """Splits the labelled rows into training and held-out Parquet files (the seed's 80/20 split).

    Returns:
        Rows in the training and in the held-out file.

    Raises:
        DataError: The target column is missing.
    """
    table = pq.read_table(dataset)
    if target not in table.column_names:
        raise DataError(f"target column {target!r} not found")
    labelled = np.flatnonzero(pc.is_valid(table[target]).to_numpy(zero_copy_only=False))
    train_rows, test_rows = split_rows(labelled, test_size, random_state)
    for rows, out in ((np.sort(train_rows), train_out), (np.sort(test_rows), test_out)):
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table.take(pa.array(rows)), out)
    return len(train_rows), len(test_rows)


def xgb_params(values: dict[str, Any]) -> XGBParams:
    """Hyperparameters from a dict whose numbers may have lost their type (KFP passes dict
    parameters as JSON structs, where every number is a float)."""
    fields = {f.name: f.type for f in dataclasses.fields(XGBParams)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise DataError(f"unknown hyperparameter(s): {', '.join(unknown)}")
    casts = {"int": int, "float": float, "str": str}
    return XGBParams(**{name: casts[fields[name]](value) for name, value in values.items()})


def train_step(
    train_data: str | Path, test_data: str | Path, out: str | Path, data: StepData,
    params: XGBParams | None = None, tune_trials: int = 0, model_name: str = "lead-scoring",
) -> TrainResult:
    """Fits (or tunes) the model on the training file, evaluates it on the held-out file and
    writes the artifact directory."""
    config = TrainConfig(
        data=str(train_data), test_data=str(test_data), out=Path(out), target=data.target,
        exclude=list(data.exclude), params=params or XGBParams(), tune_trials=tune_trials,
        min_rows=data.min_rows, model_name=model_name,
    )
    return train(config)


def holdout_from_file(test_data: str | Path, target: str) -> Any:
    """The labelled rows of a held-out file as the registry's :class:`~training.registry.promotion.Holdout`."""
    from training.features import target_array
    from training.registry.promotion import Holdout

    frame = pq.read_table(test_data).to_pandas()
    y = target_array(frame[target])
    known = ~np.isnan(y)
    return Holdout(columns=frame.loc[known].drop(columns=[target]).reset_index(drop=True), target=y[known])


def evaluate_step(model_dir: str | Path, test_data: str | Path, target: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores the verified artifact directory on the held-out file, through the serving path.

    Returns:
        ``metrics`` (rmse, mae, r2, rows, RMSE interval) and ``evaluation`` (confusion matrix in
        the KFP ``ClassificationMetrics`` shape, calibration, importance).
    """
    from predictor.model import LeadScoringModel
    from training.evaluate import evaluate

    model = LeadScoringModel.load(model_dir)
    holdout = holdout_from_file(test_data, target)
    columns = {name: holdout.columns[name].to_numpy() if name in holdout.columns else np.full(len(holdout), None)
               for name in model.transform.feature_names}
    predictions = model.predict_matrix(model.transform.transform_columns(columns))
    seed = int(model.metadata.get("split", {}).get("random_state", 0))
    return evaluate(holdout.target, predictions, model.booster, model.transform, seed=seed)


def register_step(model_dir: str | Path, test_data: str | Path, target: str, policy: Any = None,
                  registry: Any = None) -> Any:
    """Registers the model and applies the promotion policy on the held-out file.

    Returns:
        The :class:`~training.registry.base.Registration` (version, decision, whether promoted).
    """
    registry = registry or open_step_registry()
    return registry.register(model_dir, holdout_from_file(test_data, target), policy)


def write_json(payload: Any, out: str | Path) -> None:
    """Writes a step's report as JSON."""
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(payload, indent=2, default=str) + "\n")


def open_step_registry(settings: dict[str, Any] | None = None) -> Any:
    """The registry a step registers into: ``settings`` are :class:`RegistryConfig` fields
    (empty: the environment's, i.e. the local registry unless it says otherwise)."""
    from training.registry import RegistryConfig, open_registry

    return open_registry(RegistryConfig(**settings) if settings else None)


def deploy_step(model_name: str, version: str, endpoint: str, traffic: int,
                registry: dict[str, Any] | None = None) -> str:
    """Deploys a registered version to a Vertex AI endpoint; a no-op when no endpoint is configured.

    Returns:
        What was done, in words.
    """
    if not endpoint:
        return "skipped: no serving endpoint configured"
    from training.deploy import DeployConfig, deploy

    result = deploy(open_step_registry(registry), f"{model_name}@{version}",
                    DeployConfig(endpoint=endpoint, traffic=traffic))
    return f"deployed {model_name}@{version} to {result.endpoint}, traffic {result.traffic_split}"


def dataset_file(artifact_path: str | Path) -> Path:
    """The Parquet file inside a KFP Dataset artifact's directory (readers pick formats by extension)."""
    return Path(artifact_path) / "leads.parquet"
