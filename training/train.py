"""``leadscore train``: from a lead table to an evaluated, tracked artifact directory.

The steps are separate functions so that a pipeline can run each on its own:
:func:`training.sources.ingest` → :func:`training.validation.validate` →
:func:`split_rows` → :func:`training.preprocess.prepare_columns` and
:func:`training.preprocess.fit_feature_transform` → :func:`fit_model` (train or tune) →
:func:`training.evaluate.evaluate`. :func:`train` runs them in order, records the run and
writes the artifacts.

Memory stays near the size of the Arrow table read: categorical columns are held as integer
codes, the model matrix exists only in XGBoost's quantised form (built chunk by chunk), and no
dense one-hot matrix or CSV is ever written.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import xgboost as xgb
from sklearn.model_selection import train_test_split

from predictor.model import LeadScoringModel
from predictor.transform import DEFAULT_MISSING_TOKENS, FeatureTransform
from training.evaluate import evaluate
from training.export import check_output_dir, write_artifact_dir
from training.features import FeatureSpec
from training.fingerprint import data_fingerprint
from training.matrix import predict_rows, quantile_matrix
from training.preprocess import Columns, fit_feature_transform, prepare_columns, take
from training.profile import build_profile
from training.sources import IngestOptions, build_query, ingest, parse_source
from training.tracking import (
    RunRecord,
    RunStore,
    TrackingConfig,
    VertexExperiment,
    code_version,
    new_run_id,
    run_packages,
    utc_now,
)
from training.validation import MIN_ROWS, ValidatedData, validate

log = logging.getLogger(__name__)

DEFAULT_TARGET = "conversion_probability"
DEFAULT_MODEL_NAME = "lead-scoring"
EVALUATION_FILE = "evaluation.json"
# The drift profile is computed on at most this many training rows (a random sample beyond).
PROFILE_MAX_ROWS = 200_000
TUNING_FILE = "tuning.json"


@dataclass
class XGBParams:
    """XGBoost hyperparameters; the defaults are the seed's (and XGBoost's where the seed set none)."""

    n_estimators: int = 100
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0
    seed: int = 42
    objective: str = "reg:squarederror"
    tree_method: str = "hist"
    device: str = "cpu"
    n_jobs: int = 0

    def booster_params(self) -> dict[str, Any]:
        """Parameters for ``xgboost.train`` (everything but the number of rounds)."""
        params = {
            "objective": self.objective,
            "max_depth": self.max_depth,
            "eta": self.learning_rate,
            "subsample": self.subsample,
            "colsample_bytree": self.colsample_bytree,
            "min_child_weight": self.min_child_weight,
            "lambda": self.reg_lambda,
            "seed": self.seed,
            "tree_method": self.tree_method,
            "device": self.device,
        }
        if self.n_jobs:
            params["nthread"] = self.n_jobs
        return params


@dataclass
class TrainConfig:
    """What to train on and where to write the artifacts.

    Attributes:
        data: A CSV or Parquet path, ``duckdb:///file.db?table=NAME`` or ``bq://project.dataset.table``.
        out: The artifact directory to write.
        target: The target column.
        exclude: Columns never used as features (leakage, identifiers).
        query: Columns, sampling and time window of the ingestion query.
        test_size: Held-out share for evaluation.
        random_state: Seed of the train/test (and validation) split.
        params: XGBoost hyperparameters (the starting point when tuning).
        tune_trials: Tuning trials; 0 trains ``params`` as given.
        validation_size: Share of the training split held out for tuning.
        min_rows: Fewest labelled rows to train on.
        model_name: Name recorded in the metadata (the registry's model name).
        missing_tokens: Category values meaning "not given".
        tracking: Where the run is recorded.
        test_data: An already separated held-out set (the pipeline's preprocess step writes
            one); when given, ``data`` is used whole for training and ``test_size`` is ignored.
    """

    data: str
    out: Path
    target: str = DEFAULT_TARGET
    exclude: list[str] = field(default_factory=list)
    query: IngestOptions = field(default_factory=IngestOptions)
    test_size: float = 0.2
    random_state: int = 42
    params: XGBParams = field(default_factory=XGBParams)
    tune_trials: int = 0
    validation_size: float = 0.2
    min_rows: int = MIN_ROWS
    model_name: str = DEFAULT_MODEL_NAME
    missing_tokens: tuple[str, ...] = DEFAULT_MISSING_TOKENS
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    test_data: str | None = None

    def ingest_options(self) -> IngestOptions:
        """The query options, with the target added to an explicit column list."""
        columns = self.query.columns
        if columns and self.target not in columns:
            columns = (*columns, self.target)
        return IngestOptions(columns=columns, sample_percent=self.query.sample_percent, window=self.query.window)


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        out: The artifact directory.
        metrics: Test metrics.
        spec: Which columns were used and how.
        rows_train: Training rows.
        rows_test: Held-out rows.
        seconds: Wall time of the run.
        holdout: The held-out rows as prepared feature columns (what
            ``FeatureTransform.transform_columns`` takes; categorical columns have the
            ``category`` dtype), kept so that another model (the champion) can be scored on
            exactly the same rows.
        holdout_target: The held-out targets.
        holdout_predictions: This model's predictions for the held-out rows.
        run_id: The experiment run ID.
        evaluation: Confusion matrix, calibration, importance, RMSE interval (``evaluation.json``).
        params: The hyperparameters of the model written (the best ones when tuned).
        trials: The tuning trials (empty without tuning).
        warnings: Validation warnings.
    """

    out: Path
    metrics: dict[str, float]
    spec: FeatureSpec
    rows_train: int
    rows_test: int
    seconds: float
    holdout: pd.DataFrame
    holdout_target: np.ndarray
    holdout_predictions: np.ndarray
    run_id: str | None = None
    evaluation: dict[str, Any] = field(default_factory=dict)
    params: XGBParams | None = None
    trials: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def split_rows(rows: np.ndarray, test_size: float, random_state: int) -> tuple[np.ndarray, np.ndarray]:
    """Shuffles and splits row positions as ``train_test_split`` does (the seed's split)."""
    train_index, test_index = train_test_split(np.arange(len(rows)), test_size=test_size, random_state=random_state)
    return rows[train_index], rows[test_index]


class _TreeProgress(xgb.callback.TrainingCallback):
    """Reports each tree as it is added: 100 trees on 8M rows take about 40 s on 2 cores."""

    def __init__(self, progress: Callable[[str], None], prefix: str, total: int):
        super().__init__()
        self._progress, self._prefix, self._total = progress, prefix, total

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        self._progress(f"{self._prefix}: tree {epoch + 1}/{self._total}")
        return False  # never stop early


def fit_booster(matrix: xgb.DMatrix, params: XGBParams, progress: Callable[[str], None] | None = None,
                prefix: str = "training XGBoost") -> xgb.Booster:
    """Trains the XGBoost regressor on a model matrix.

    Args:
        matrix: The training matrix.
        params: The hyperparameters.
        progress: Called with ``"<prefix>: tree i/n"`` after each tree.
        prefix: The start of those messages.
    """
    callbacks = [_TreeProgress(progress, prefix, params.n_estimators)] if progress else None
    return xgb.train(params.booster_params(), matrix, num_boost_round=params.n_estimators, callbacks=callbacks)


def fit_model(
    transform: FeatureTransform,
    columns: Columns,
    y: np.ndarray,
    train_rows: np.ndarray,
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> tuple[xgb.Booster, XGBParams, list[dict[str, Any]]]:
    """Trains the model on the training rows, after tuning when ``config.tune_trials`` asks for it.

    Returns:
        The booster, its hyperparameters and the tuning trials (empty without tuning).
    """
    params, trials = config.params, []
    if config.tune_trials > 0:
        from training.tune import tune

        inner_rows, valid_rows = split_rows(train_rows, config.validation_size, config.random_state)
        _notify(progress, f"tuning: {config.tune_trials} trials on {len(inner_rows):,} rows, "
                          f"validated on {len(valid_rows):,}")
        dinner = quantile_matrix(transform, columns, inner_rows, y)
        dvalid = quantile_matrix(transform, columns, valid_rows, y, ref=dinner)
        result = tune(dinner, dvalid, config.params, config.tune_trials, progress)
        del dinner, dvalid
        params, trials = result.params, result.trials
    stage = f"training XGBoost ({params.n_estimators} trees, depth {params.max_depth}) on {len(train_rows):,} rows"
    _notify(progress, stage)
    booster = fit_booster(quantile_matrix(transform, columns, train_rows, y), params, progress, stage)
    return booster, params, trials


def _notify(progress: Callable[[str], None] | None, message: str) -> None:
    log.info(message)
    if progress:
        progress(message)


def _run_params(config: TrainConfig) -> dict[str, Any]:
    window = config.query.window
    return {
        "source": str(config.data),
        "target": config.target,
        "exclude": list(config.exclude),
        "columns": list(config.query.columns),
        "sample_percent": config.query.sample_percent,
        "window_column": window.column if window else None,
        "window_start": window.start.isoformat() if window and window.start else None,
        "window_end": window.end.isoformat() if window and window.end else None,
        "test_size": config.test_size,
        "random_state": config.random_state,
        "tune_trials": config.tune_trials,
        "validation_size": config.validation_size if config.tune_trials else None,
        **asdict(config.params),
    }


def train(
    config: TrainConfig,
    progress: Callable[[str], None] | None = None,
    *,
    bigquery_client: Any = None,
    experiment: VertexExperiment | None = None,
) -> TrainResult:
    """Reads, validates, fits (or tunes), evaluates, records the run and writes the artifacts.

    Args:
        config: The run's configuration.
        progress: Called with a short message as each step starts.
        bigquery_client: The ``google.cloud.bigquery.Client`` for a ``bq://`` source (default: one
            with application default credentials).
        experiment: The Vertex AI Experiments logger when ``config.tracking.backend`` is
            ``vertex`` (default: one with application default credentials).

    Returns:
        Metrics and facts of the run.

    Raises:
        DataError: The data cannot be trained on; nothing is written or recorded.
        training.errors.SourceError: The data cannot be read.
        training.errors.TrackingError: The run cannot be recorded.
        training.errors.OutputError: ``config.out`` cannot be written or is not a model directory.
    """
    started = time.perf_counter()
    check_output_dir(config.out)  # before any work: a wrong --out is found in a second, not after training
    source = parse_source(config.data)
    options = config.ingest_options()
    _notify(progress, f"reading {config.data}")
    table = ingest(source, options, bigquery_client=bigquery_client)
    rows_train_part = None
    if config.test_data:
        # One table, training rows first, so validation and preparation see both parts alike.
        _notify(progress, f"reading held-out rows from {config.test_data}")
        test_table = ingest(parse_source(config.test_data), options, bigquery_client=bigquery_client)
        rows_train_part = table.num_rows
        table = pa.concat_tables([table, test_table.select(table.column_names)], promote_options="permissive")
    _notify(progress, f"validating {table.num_rows:,} rows")
    validated = validate(table, config.target, config.exclude, config.min_rows)
    fingerprint = data_fingerprint(table)
    rows_total = table.num_rows
    # Validation and hashing leave freed blocks in Arrow's allocator (mimalloc), which keeps them
    # for Arrow (60 MB at 1M rows); preparation allocates with numpy and cannot reuse them.
    pool = pa.default_memory_pool()
    pool.release_unused()
    columns = prepare_columns(table, validated.spec, config.missing_tokens)
    del table  # only the prepared columns from here on: categorical columns as integer codes
    pool.release_unused()  # the same for what preparation freed, before XGBoost (12 MB at 1M rows)

    run = RunRecord(
        run_id=new_run_id(), experiment=config.tracking.experiment, started_at=utc_now(),
        params=_run_params(config), data={"source": str(config.data), "query": build_query(source, options),
                                          "fingerprint": fingerprint},
        code=code_version(), packages=run_packages(),
    )
    store = RunStore()
    if config.tracking.backend == "vertex":
        experiment = experiment or VertexExperiment(config.tracking)
    store.save(run)
    if experiment:
        experiment.start(run)
    try:
        result = _train_validated(config, columns, rows_total, validated, run, progress, rows_train_part)
        run.status, run.metrics, run.artifact_uri = "finished", result.metrics, str(result.out)
        run.trials = result.trials
        run.params.update(asdict(result.params))  # after tuning: the hyperparameters of the model written
    except BaseException as exc:
        run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        run.ended_at = utc_now()
        store.save(run)
        if experiment:
            experiment.finish(run)
    result.seconds = time.perf_counter() - started
    return result


def _train_validated(config: TrainConfig, columns: Columns, rows_total: int, validated: ValidatedData,
                     run: RunRecord, progress: Callable[[str], None] | None,
                     rows_train_part: int | None = None) -> TrainResult:
    spec, y = validated.spec, validated.target
    if rows_train_part is None:
        train_rows, test_rows = split_rows(validated.labelled, config.test_size, config.random_state)
    else:
        labelled = validated.labelled
        train_rows, test_rows = labelled[labelled < rows_train_part], labelled[labelled >= rows_train_part]

    _notify(progress, f"fitting preprocessing on {len(train_rows):,} rows ({len(spec.features)} features)")
    transform = fit_feature_transform(take(columns, train_rows), spec, config.missing_tokens)
    booster, params, trials = fit_model(transform, columns, y, train_rows, config, progress)

    _notify(progress, f"evaluating on {len(test_rows):,} held-out rows")
    # Scored as serving scores them, so held-out metrics are those of the served scores.
    scorer = LeadScoringModel.from_booster(booster, transform)
    test_pred = predict_rows(scorer, columns, test_rows)
    metrics, evaluation = evaluate(y[test_rows], test_pred, booster, transform, seed=config.random_state)
    if trials:
        metrics["validation_rmse"] = min(t["validation_rmse"] for t in trials if t["validation_rmse"] is not None)
    # The training rows are in random order: their head is a random sample, plenty for 10 quantile bins.
    profile_rows = train_rows[:PROFILE_MAX_ROWS]
    profile = build_profile(columns, spec, predict_rows(scorer, columns, profile_rows), rows=profile_rows)

    metadata = {
        "model_name": config.model_name,
        "version": None,
        "run_id": run.run_id,
        "target": config.target,
        "created_at": run.started_at,
        "data": {**run.data, "rows": rows_total, "rows_labelled": int(len(validated.labelled)),
                 "rows_train": int(len(train_rows)), "rows_test": int(len(test_rows))},
        "split": {"test_size": config.test_size, "random_state": config.random_state,
                  "validation_size": config.validation_size if trials else None},
        "params": asdict(params),
        "tuning": {"trials": len(trials), "validation_rmse": metrics.get("validation_rmse")} if trials else None,
        "features": transform.feature_types(),
        "dropped_columns": spec.dropped,
        "warnings": validated.warnings,
    }
    extra = {EVALUATION_FILE: evaluation}
    if trials:
        extra[TUNING_FILE] = {"metric": "validation rmse", "trials": trials}
    _notify(progress, f"writing artifacts to {config.out}")
    out = write_artifact_dir(config.out, booster=booster, transform=transform, metrics=metrics, profile=profile,
                             metadata=metadata, extra_json=extra)
    return TrainResult(
        out=out, metrics=metrics, spec=spec, rows_train=len(train_rows), rows_test=len(test_rows), seconds=0.0,
        holdout=pd.DataFrame(take(columns, test_rows)), holdout_target=y[test_rows],
        holdout_predictions=test_pred, run_id=run.run_id, evaluation=evaluation, params=params, trials=trials,
        warnings=validated.warnings,
    )
