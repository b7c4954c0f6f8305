"""``leadscore train``: from a lead table to an evaluated artifact directory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from scipy import sparse
from sklearn.model_selection import train_test_split

from predictor.transform import BOOSTER_MISSING, DEFAULT_MISSING_TOKENS, FeatureTransform
from training.errors import DataError
from training.evaluate import regression_metrics
from training.export import write_artifact_dir
from training.features import FeatureSpec, detect_features, target_array
from training.preprocess import fit_transform, prepare_frame
from training.profile import build_profile
from training.sources import read_table

log = logging.getLogger(__name__)

DEFAULT_TARGET = "conversion_probability"
DEFAULT_MODEL_NAME = "lead-scoring"


@dataclass
class XGBParams:
    """XGBoost hyperparameters; the defaults are the seed's."""

    n_estimators: int = 100
    max_depth: int = 6
    learning_rate: float = 0.1
    subsample: float = 0.8
    colsample_bytree: float = 0.8
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
        data: A CSV or Parquet path.
        out: The artifact directory to write.
        target: The target column.
        exclude: Columns never used as features (leakage, identifiers).
        test_size: Held-out share for evaluation.
        random_state: Seed of the train/test split.
        params: XGBoost hyperparameters.
        model_name: Name recorded in the metadata (the registry's model name).
        missing_tokens: Category values meaning "not given".
    """

    data: str
    out: Path
    target: str = DEFAULT_TARGET
    exclude: list[str] = field(default_factory=list)
    test_size: float = 0.2
    random_state: int = 42
    params: XGBParams = field(default_factory=XGBParams)
    model_name: str = DEFAULT_MODEL_NAME
    missing_tokens: tuple[str, ...] = DEFAULT_MISSING_TOKENS


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
            ``FeatureTransform.transform_columns`` takes), kept so that another model (the champion)
            can be scored on exactly the same rows.
        holdout_target: The held-out targets.
        holdout_predictions: This model's predictions for the held-out rows.
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


def fit_booster(matrix: sparse.csr_matrix | np.ndarray, y: np.ndarray, params: XGBParams) -> xgb.Booster:
    """Trains the XGBoost regressor on a (sparse) model matrix.

    Zeros are read as missing (:data:`predictor.transform.BOOSTER_MISSING`), matching how
    the CSR matrix stores them and how serving reads its dense matrix.
    """
    dtrain = xgb.QuantileDMatrix(matrix, label=y, missing=BOOSTER_MISSING)
    return xgb.train(params.booster_params(), dtrain, num_boost_round=params.n_estimators)


def _notify(progress: Callable[[str], None] | None, message: str) -> None:
    log.info(message)
    if progress:
        progress(message)


def train(config: TrainConfig, progress: Callable[[str], None] | None = None) -> TrainResult:
    """Reads the data, fits preprocessing and XGBoost, evaluates and writes the artifacts.

    Args:
        config: The run's configuration.
        progress: Called with a short message as each step starts.

    Returns:
        Metrics and facts of the run.

    Raises:
        DataError: The data cannot be trained on; nothing is written.
        training.errors.SourceError: The data cannot be read.
    """
    started = time.perf_counter()
    _notify(progress, f"reading {config.data}")
    frame = read_table(config.data)
    spec = detect_features(frame, config.target, config.exclude)
    y_all = target_array(frame[config.target])
    labelled = ~np.isnan(y_all)
    if not labelled.all():
        log.info("dropping %d rows without a target value", int((~labelled).sum()))
        frame, y_all = frame.loc[labelled], y_all[labelled]
    if len(frame) < 10:
        raise DataError(f"only {len(frame)} labelled rows; at least 10 are needed to train and evaluate")

    train_idx, test_idx = train_test_split(
        np.arange(len(frame)), test_size=config.test_size, random_state=config.random_state
    )
    prepared = prepare_frame(frame, spec, config.missing_tokens)
    del frame
    prepared_train, prepared_test = prepared.iloc[train_idx], prepared.iloc[test_idx]
    y_train, y_test = y_all[train_idx], y_all[test_idx]

    _notify(progress, f"fitting preprocessing on {len(train_idx):,} rows ({len(spec.features)} features)")
    transform, x_train = fit_transform(prepared_train, spec, config.missing_tokens)

    _notify(progress, f"training XGBoost ({config.params.n_estimators} trees, depth {config.params.max_depth})")
    booster = fit_booster(x_train, y_train, config.params)

    _notify(progress, f"evaluating on {len(test_idx):,} held-out rows")
    test_pred = booster.inplace_predict(_columns_matrix(transform, prepared_test), missing=BOOSTER_MISSING)
    metrics = regression_metrics(y_test, test_pred)
    train_pred = booster.inplace_predict(x_train, missing=BOOSTER_MISSING)
    profile = build_profile(prepared_train, spec, train_pred)

    metadata = {
        "model_name": config.model_name,
        "version": None,
        "target": config.target,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"source": str(config.data), "rows": int(len(prepared)), "rows_train": int(len(train_idx)),
                 "rows_test": int(len(test_idx))},
        "split": {"test_size": config.test_size, "random_state": config.random_state},
        "params": asdict(config.params),
        "features": transform.feature_types(),
        "dropped_columns": spec.dropped,
    }
    _notify(progress, f"writing artifacts to {config.out}")
    out = write_artifact_dir(
        config.out, booster=booster, transform=transform, metrics=metrics, profile=profile, metadata=metadata
    )
    return TrainResult(
        out=out, metrics=metrics, spec=spec, rows_train=len(train_idx), rows_test=len(test_idx),
        seconds=time.perf_counter() - started, holdout=prepared_test, holdout_target=y_test,
        holdout_predictions=test_pred,
    )


def _columns_matrix(transform: FeatureTransform, prepared: pd.DataFrame) -> np.ndarray:
    """The serving transform applied to prepared rows: evaluation sees exactly what serving sees."""
    return transform.transform_columns({name: prepared[name].to_numpy() for name in transform.feature_names})
