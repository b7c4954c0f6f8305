"""Hyperparameter tuning: optuna's TPE sampler with XGBoost early stopping, and the same search as a Vertex spec.

Trials train on the training split minus a validation split carved from it, and are scored on
that validation split; the test split is never seen while tuning. Every trial is recorded. The
best parameters (with the early-stopped number of trees) are then retrained on the whole
training split by the caller.

The search space is defined once (:data:`SEARCH_SPACE`) and used both by the local study and
by :func:`vertex_tuning_job`, which emits it as a Vertex AI ``HyperparameterTuningJob``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import xgboost as xgb

from training.train import XGBParams

log = logging.getLogger(__name__)

MAX_ROUNDS = 2000
EARLY_STOPPING_ROUNDS = 50
TUNING_METRIC = "rmse"


@dataclass(frozen=True)
class SearchParam:
    """One tuned hyperparameter: an ``XGBParams`` field and its range."""

    name: str
    low: float
    high: float
    integer: bool = False
    log: bool = False


SEARCH_SPACE: tuple[SearchParam, ...] = (
    SearchParam("max_depth", 3, 10, integer=True),
    SearchParam("learning_rate", 0.02, 0.3, log=True),
    SearchParam("subsample", 0.5, 1.0),
    SearchParam("colsample_bytree", 0.5, 1.0),
    SearchParam("min_child_weight", 1.0, 30.0, log=True),
    SearchParam("reg_lambda", 1e-3, 10.0, log=True),
)


@dataclass
class TuningResult:
    """What a study found.

    Attributes:
        params: The best hyperparameters, ``n_estimators`` set to the best trial's early-stopped
            number of trees.
        validation_rmse: The best trial's validation RMSE.
        trials: Every trial: ``number``, ``params``, ``validation_rmse``, ``n_estimators``, ``state``.
    """

    params: XGBParams
    validation_rmse: float
    trials: list[dict[str, Any]] = field(default_factory=list)


def tune(
    dtrain: xgb.DMatrix,
    dvalid: xgb.DMatrix,
    base: XGBParams,
    trials: int,
    progress: Callable[[str], None] | None = None,
) -> TuningResult:
    """Runs ``trials`` optuna TPE trials, each an XGBoost fit with early stopping on ``dvalid``.

    Args:
        dtrain: The training rows minus the validation rows.
        dvalid: The validation rows (quantised with ``dtrain``'s cuts).
        base: Fixed parameters (objective, seed, device...); the searched ones are overridden.
        trials: Number of trials.
        progress: Called with a line after each trial.

    Returns:
        The best parameters and every trial.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: optuna.Trial) -> float:
        values = {
            p.name: trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log) if p.integer
            else trial.suggest_float(p.name, p.low, p.high, log=p.log)
            for p in SEARCH_SPACE
        }
        params = replace(base, **values)
        booster = xgb.train(
            {**params.booster_params(), "eval_metric": TUNING_METRIC}, dtrain, num_boost_round=MAX_ROUNDS,
            evals=[(dvalid, "validation")], early_stopping_rounds=EARLY_STOPPING_ROUNDS, verbose_eval=False,
        )
        trial.set_user_attr("n_estimators", booster.best_iteration + 1)
        return float(booster.best_score)

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if progress:
            progress(f"tuning: trial {trial.number + 1}/{trials}, validation RMSE {trial.value:.5f} "
                     f"(best {study.best_value:.5f})")

    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=base.seed))
    study.optimize(objective, n_trials=trials, callbacks=[report])
    best = study.best_trial
    records = [
        {"number": t.number, "params": t.params, "validation_rmse": t.value,
         "n_estimators": t.user_attrs.get("n_estimators"), "state": t.state.name}
        for t in study.trials
    ]
    params = replace(base, **best.params, n_estimators=int(best.user_attrs["n_estimators"]))
    log.info("best of %d trials: validation RMSE %.5f with %s", trials, best.value, best.params)
    return TuningResult(params=params, validation_rmse=float(best.value), trials=records)


def vertex_tuning_job(
    trials: int,
    parallel: int,
    image_uri: str,
    args: Sequence[str],
    command: Sequence[str] = (),
    display_name: str = "lead-scoring-tuning",
    machine_type: str = "n1-standard-8",
    accelerator: str | None = None,
) -> dict[str, Any]:
    """The search space as a Vertex AI ``HyperparameterTuningJob`` (REST JSON, for ``hyperparameterTuningJobs.create``).

    Each trial runs ``image_uri`` with ``args``; Vertex AI appends ``--<name>=<value>`` for
    every searched parameter (``leadscore train`` accepts ``--max_depth=5`` and the like) and
    reads the metric ``rmse`` the trial reports, minimising it with Vertex's default search.

    Args:
        trials: ``maxTrialCount``.
        parallel: ``parallelTrialCount``.
        image_uri: The training image.
        args: The container's arguments before the tuned ones.
        command: The container's entrypoint (the image's own when empty).
        display_name: The job's display name.
        machine_type: Compute Engine machine type of each trial.
        accelerator: An accelerator type (e.g. ``NVIDIA_TESLA_T4``) for GPU training, one per trial.

    Returns:
        The job as the JSON the REST API takes (camelCase), built through the API's own message
        types, so an unknown field or a wrong type fails here.
    """
    from google.cloud.aiplatform_v1.types import (
        CustomJobSpec,
        HyperparameterTuningJob,
        StudySpec,
        WorkerPoolSpec,
    )
    from google.cloud.aiplatform_v1.types.machine_resources import MachineSpec
    from google.cloud.aiplatform_v1.types.custom_job import ContainerSpec

    spec = StudySpec.ParameterSpec
    parameters = []
    for p in SEARCH_SPACE:
        scale = spec.ScaleType.UNIT_LOG_SCALE if p.log else spec.ScaleType.UNIT_LINEAR_SCALE
        if p.integer:
            parameters.append(spec(parameter_id=p.name, scale_type=scale, integer_value_spec=spec.IntegerValueSpec(
                min_value=int(p.low), max_value=int(p.high))))
        else:
            parameters.append(spec(parameter_id=p.name, scale_type=scale, double_value_spec=spec.DoubleValueSpec(
                min_value=p.low, max_value=p.high)))
    machine = MachineSpec(machine_type=machine_type)
    if accelerator:
        machine = MachineSpec(machine_type=machine_type, accelerator_type=accelerator, accelerator_count=1)
    container = ContainerSpec(image_uri=image_uri, command=list(command), args=list(args))
    job = HyperparameterTuningJob(
        display_name=display_name,
        study_spec=StudySpec(
            metrics=[StudySpec.MetricSpec(metric_id=TUNING_METRIC, goal=StudySpec.MetricSpec.GoalType.MINIMIZE)],
            parameters=parameters,
        ),
        max_trial_count=trials,
        parallel_trial_count=parallel,
        trial_job_spec=CustomJobSpec(worker_pool_specs=[WorkerPoolSpec(
            machine_spec=machine, replica_count=1, container_spec=container,
        )]),
    )
    return json.loads(HyperparameterTuningJob.to_json(
        job, use_integers_for_enums=False, always_print_fields_with_no_presence=False))

