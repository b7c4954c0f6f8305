"""``leadscore run``: the main job, from data to a registered champion, on one of three engines.

- ``local``: the pipeline's steps called in-process, in the pipeline's order (the fast path);
- ``kfp-local``: the compiled KFP DAG run by ``kfp.local`` with the subprocess runner;
- ``vertex``: an ``aiplatform.PipelineJob`` submitted to Vertex AI Pipelines (caching on).

All three run the same functions of :mod:`training.steps` with the same parameters, which
:func:`pipeline_parameters` derives from one :class:`~training.config.LeadscoreConfig`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from training.config import LeadscoreConfig
from training.errors import ConfigError, PipelineError
from training.state import home_dir

ENGINES = ("local", "kfp-local", "vertex")
PIPELINE_ROOT_DIR = "pipeline-root"
RUNS_DIR = "jobs"

Progress = Callable[[str], None]


@dataclass
class JobSummary:
    """What a run of the main job did.

    Attributes:
        engine: The engine that ran it.
        rows: Rows ingested (None when the job was only submitted).
        metrics: Held-out metrics of the new model.
        decision: The registration: version, promotion decision, both RMSEs and the reason.
        artifact_uri: Where the registered version's artifacts are.
        deployment: What the deploy step did.
        pipeline_job: The Vertex AI pipeline job's resource name (vertex engine).
    """

    engine: str
    rows: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    artifact_uri: str | None = None
    deployment: str | None = None
    pipeline_job: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def registry_settings(config: LeadscoreConfig) -> dict[str, Any]:
    """``RegistryConfig`` fields for the registry and deploy steps (empty: the local registry)."""
    if config.registry.backend == "local":
        return {}
    settings = {"backend": config.registry.backend, "project": config.cloud.project,
                "location": config.cloud.region, "registry_uri": config.registry.uri,
                "serving_image": config.serving.image}
    return {key: value for key, value in settings.items() if value is not None}


def data_version(source: str | None, synth_rows: int, synth_seed: int) -> str:
    """A key that changes whenever the source's data may have: it keys the ingest step's cache.

    Synthetic leads are fixed by their size and seed and a file by its size and modification
    time; a table (``bq://``, ``duckdb://``) can change at any time, so it gets the current time.
    """
    if not source:
        return f"synthetic:{synth_rows}:{synth_seed}"
    path = Path(source)
    if "://" not in source and path.is_file():
        stat = path.stat()
        return f"file:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return f"table:{datetime.now(timezone.utc).isoformat()}"


def pipeline_parameters(config: LeadscoreConfig, home: str = "") -> dict[str, Any]:
    """The pipeline's parameter values for a configuration (see ``pipeline.pipeline``)."""
    data, train = config.data, config.train
    hyperparameters = asdict(train.hyperparameters)
    if train.device:
        hyperparameters["device"] = train.device
    return {
        "source": data.source or "",
        "data_version": data_version(data.source, config.pipeline.synth_rows, config.pipeline.synth_seed),
        "sample_percent": float(data.sample_percent or 0.0),
        "synth_rows": config.pipeline.synth_rows,
        "synth_seed": config.pipeline.synth_seed,
        "target": data.target,
        "exclude": list(data.exclude),
        "min_rows": data.min_rows,
        "test_size": train.test_size,
        "random_state": train.random_state,
        "hyperparameters": hyperparameters,
        "tune_trials": train.tune_trials,
        "model_name": train.model_name,
        "min_improvement": config.registry.min_improvement,
        "require_significance": config.registry.require_significance,
        "registry": registry_settings(config),
        "home": home,
        "endpoint": config.serving.endpoint,
        "traffic": config.serving.traffic,
    }


def _notify(progress: Progress | None, message: str) -> None:
    if progress:
        progress(message)


def run_local(config: LeadscoreConfig, progress: Progress | None = None) -> JobSummary:
    """Runs the pipeline's steps in-process, in order, in a fresh folder of the state directory."""
    from training.registry.promotion import PromotionPolicy
    from training.steps import (
        StepData, deploy_step, evaluate_step, ingest_step, open_step_registry, register_step, split_step,
        train_step, validate_step, write_json, xgb_params,
    )

    params = pipeline_parameters(config)
    work = home_dir() / RUNS_DIR / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    data = StepData(source=config.data.source, target=params["target"], exclude=params["exclude"],
                    sample_percent=config.data.sample_percent, min_rows=params["min_rows"],
                    synth_rows=params["synth_rows"], synth_seed=params["synth_seed"])
    _notify(progress, f"ingest: {config.data.source or f'{data.synth_rows:,} synthetic leads'}")
    rows = ingest_step(data, work / "leads.parquet")
    _notify(progress, f"validate: {rows:,} rows")
    write_json(validate_step(work / "leads.parquet", data), work / "validation.json")
    _notify(progress, "preprocess: train/test split")
    split_step(work / "leads.parquet", work / "train.parquet", work / "test.parquet", data.target,
               params["test_size"], params["random_state"])
    tuning = f", tuning {params['tune_trials']} trials" if params["tune_trials"] else ""
    _notify(progress, f"train: XGBoost{tuning}")
    train_step(work / "train.parquet", work / "test.parquet", work / "model", data,
               xgb_params(params["hyperparameters"]), params["tune_trials"], params["model_name"])
    _notify(progress, "evaluate: held-out rows through the serving path")
    metrics, evaluation = evaluate_step(work / "model", work / "test.parquet", data.target)
    write_json(evaluation, work / "evaluation.json")
    _notify(progress, "register: champion/challenger on the same held-out rows")
    registry = open_step_registry(params["registry"])
    registration = register_step(work / "model", work / "test.parquet", data.target,
                                 PromotionPolicy(params["min_improvement"], params["require_significance"]),
                                 registry)
    deployment = None
    if registration.promoted:
        _notify(progress, "deploy")
        deployment = deploy_step(params["model_name"], registration.version.version, params["endpoint"],
                                 params["traffic"], params["registry"])
    return JobSummary(engine="local", rows=rows, metrics=metrics, decision=registration.to_dict(),
                      artifact_uri=registration.version.artifact_uri, deployment=deployment)


def run_kfp_local(config: LeadscoreConfig, progress: Progress | None = None) -> JobSummary:
    """Runs the compiled DAG with ``kfp.local``'s subprocess runner (caching on, as on Vertex AI)."""
    import kfp.local

    from pipeline.pipeline import lead_scoring_pipeline

    home = home_dir().absolute()
    root = Path(config.pipeline.root) if config.pipeline.root else home / PIPELINE_ROOT_DIR
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
                   enable_caching=True)
    _notify(progress, f"kfp.local: running the pipeline (outputs in {root})")
    try:
        # kfp.local prints every task's log to stdout; keep stdout for the job's own output (--json).
        with contextlib.redirect_stdout(sys.stderr):
            task = lead_scoring_pipeline(**pipeline_parameters(config, home=str(home)))
    except RuntimeError as exc:  # kfp.local reports a failed task this way; the task's log says why
        raise PipelineError(f"{exc} (the task's output above says why; nothing after it ran)") from exc
    decision = json.loads(Path(task.output.path).read_text())
    version = decision["version"]
    return JobSummary(engine="kfp-local", metrics=version.get("metrics", {}), decision=decision,
                      artifact_uri=version.get("artifact_uri"))


def compile_pipeline(out: str | Path, training_image: str | None = None) -> Path:
    """Compiles the pipeline to a YAML file.

    Args:
        out: The YAML file to write.
        training_image: The image the components run in (default: ``$LEADSCORE_TRAINING_IMAGE``
            or ``leadscore-training:latest``).
    """
    import importlib

    from kfp import compiler

    from pipeline.image import TRAINING_IMAGE_ENV

    def fresh_pipeline_module():
        # Components take their image when defined: import them afresh under the current value.
        for name in [n for n in sys.modules if n == "pipeline.image" or n.startswith("pipeline.components")
                     or n == "pipeline.pipeline"]:
            del sys.modules[name]
        return importlib.import_module("pipeline.pipeline")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = os.environ.get(TRAINING_IMAGE_ENV)
    if training_image:
        os.environ[TRAINING_IMAGE_ENV] = training_image
    try:
        compiler.Compiler().compile(fresh_pipeline_module().lead_scoring_pipeline, str(out))
    finally:
        if training_image:
            if previous is None:
                os.environ.pop(TRAINING_IMAGE_ENV, None)
            else:
                os.environ[TRAINING_IMAGE_ENV] = previous
            fresh_pipeline_module()
    return out


def _vertex_job(config: LeadscoreConfig, template: Path, credentials: Any = None, api_endpoint: str | None = None):
    """An ``aiplatform.PipelineJob`` for the configuration (not yet submitted)."""
    from google.cloud import aiplatform

    if not config.cloud.project:
        raise ConfigError("the vertex engine needs [cloud] project")
    if not (config.pipeline.root or "").startswith("gs://"):
        raise ConfigError("the vertex engine needs [pipeline] root = \"gs://BUCKET/PREFIX\"")
    if config.registry.backend != "vertex":
        raise ConfigError("on Vertex AI Pipelines the registry must be Vertex AI's: set [registry] backend = "
                          "\"vertex\" and uri")
    init: dict[str, Any] = {"project": config.cloud.project, "location": config.cloud.region}
    if credentials is not None:
        init["credentials"] = credentials
    if api_endpoint:
        init.update(api_transport="rest", api_endpoint=api_endpoint)
    aiplatform.init(**init)
    return aiplatform.PipelineJob(
        display_name="lead-scoring",
        template_path=str(template),
        pipeline_root=config.pipeline.root,
        parameter_values=pipeline_parameters(config),
        # None keeps each task's compiled setting: cached, except registration and deployment
        # (True would force the cache on for every task, so a rerun would register nothing).
        enable_caching=None,
    )


def submit_vertex(config: LeadscoreConfig, progress: Progress | None = None, credentials: Any = None,
                  api_endpoint: str | None = None) -> JobSummary:
    """Compiles the pipeline and submits it to Vertex AI Pipelines.

    Raises:
        ConfigError: The project, the pipeline root or the Vertex AI registry is not configured.
    """
    with tempfile.TemporaryDirectory() as tmp:
        template = compile_pipeline(Path(tmp) / "lead_scoring_pipeline.yaml", config.pipeline.training_image)
        job = _vertex_job(config, template, credentials, api_endpoint)
        _notify(progress, f"submitting to Vertex AI Pipelines in {config.cloud.project}/{config.cloud.region}")
        job.submit(service_account=config.cloud.service_account)
    return JobSummary(engine="vertex", pipeline_job=job.resource_name)


def schedule_vertex(config: LeadscoreConfig, cron: str, credentials: Any = None,
                    api_endpoint: str | None = None) -> str:
    """Creates a Vertex AI pipeline schedule (``PipelineJobSchedule``) that runs the job on ``cron``.

    Returns:
        The schedule's resource name.
    """
    with tempfile.TemporaryDirectory() as tmp:
        template = compile_pipeline(Path(tmp) / "lead_scoring_pipeline.yaml", config.pipeline.training_image)
        job = _vertex_job(config, template, credentials, api_endpoint)
        schedule = job.create_schedule(cron=cron, display_name="lead-scoring-retraining",
                                       service_account=config.cloud.service_account)
    return schedule.resource_name


def run_job(config: LeadscoreConfig, engine: str | None = None, progress: Progress | None = None) -> JobSummary:
    """Runs the main job on ``engine`` (default: the config's ``[pipeline] engine``).

    Raises:
        ConfigError: Unknown engine or missing settings.
        training.errors.DataError: The data cannot be trained on; nothing is registered.
    """
    engine = engine or config.pipeline.engine
    if engine == "local":
        return run_local(config, progress)
    if engine == "kfp-local":
        return run_kfp_local(config, progress)
    if engine == "vertex":
        return submit_vertex(config, progress)
    raise ConfigError(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}")
