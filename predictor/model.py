"""A loaded lead-scoring model: the verified artifacts, the booster and the fitted transform."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xgboost as xgb

from predictor.artifacts import (
    METADATA_FILE,
    MODEL_FILE,
    TRANSFORM_FILE,
    LocalArtifacts,
    open_artifacts,
    read_json,
)
from predictor.forest import BitmaskForest, ForestUnsupported
from predictor.transform import FeatureTransform

log = logging.getLogger(__name__)


@dataclass
class LeadScoringModel:
    """Everything needed to score leads, loaded from one artifact directory.

    Attributes:
        booster: The trained XGBoost booster.
        transform: The fitted feature transform (the input contract).
        metadata: ``metadata.json``: model name, version, target, training parameters.
        manifest: The verified manifest (checksums and library versions).
        forest: The booster's trees compiled for numpy evaluation (``predictor/forest.py``), or
            ``None`` when the booster has a form it does not support and XGBoost predicts.
    """

    booster: xgb.Booster
    transform: FeatureTransform
    metadata: dict[str, Any]
    manifest: dict[str, Any]
    forest: BitmaskForest | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls, uri: str | os.PathLike[str], gcs_client: Any = None, threads: int | None = None, compile_trees: bool = True,
    ) -> LeadScoringModel:
        """Loads and verifies an artifact directory (local path or ``gs://`` URI).

        Args:
            uri: The artifact directory.
            gcs_client: A ``google.cloud.storage.Client`` for ``gs://`` URIs (default client otherwise).
            threads: XGBoost prediction threads; ``None`` uses every core (batch scoring).
            compile_trees: Compile the trees for numpy evaluation (:func:`compile_forest`);
                ``False`` always predicts with XGBoost.

        Raises:
            predictor.artifacts.ArtifactError: The artifacts are missing or altered.
        """
        artifacts: LocalArtifacts = open_artifacts(uri, gcs_client=gcs_client)
        try:
            booster = xgb.Booster()
            booster.load_model(str(artifacts.path / MODEL_FILE))
            if threads:
                booster.set_param({"nthread": threads})
            transform = FeatureTransform.load(artifacts.path / TRANSFORM_FILE)
            metadata = read_json(artifacts.path / METADATA_FILE)
        finally:
            # Everything is in memory now; a private download is not needed any more.
            artifacts.cleanup()
        return cls.from_booster(booster, transform, metadata, artifacts.manifest, compile_trees=compile_trees)

    @classmethod
    def from_booster(
        cls, booster: xgb.Booster, transform: FeatureTransform, metadata: dict[str, Any] | None = None,
        manifest: dict[str, Any] | None = None, compile_trees: bool = True,
    ) -> LeadScoringModel:
        """A model from a booster and transform in memory (training scores with it before writing).

        Args:
            booster: The trained booster.
            transform: Its fitted transform.
            metadata: ``metadata.json`` contents, if any.
            manifest: The verified manifest, if any.
            compile_trees: As in :meth:`load`.
        """
        return cls(booster=booster, transform=transform, metadata=metadata or {}, manifest=manifest or {},
                   forest=compile_forest(booster, transform) if compile_trees else None)

    @property
    def name(self) -> str:
        """The registered model name (``lead-scoring`` by default)."""
        return str(self.metadata.get("model_name", "lead-scoring"))

    @property
    def version(self) -> str:
        """The registry's semantic version, or ``unregistered`` for a fresh training output."""
        return str(self.metadata.get("version") or "unregistered")

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray:
        """Scores an already transformed input matrix.

        With a compiled forest the trees are evaluated with numpy (equal to XGBoost's
        prediction to float32 rounding, several times faster for a request's rows); otherwise
        the booster predicts in place. The matrix always has the transform's column layout, so
        XGBoost's own feature check (a per-call cost on the request path) is skipped.
        """
        if matrix.ndim != 2 or matrix.shape[1] != self.transform.n_outputs:
            raise ValueError(f"model input has shape {matrix.shape}; expected (rows, {self.transform.n_outputs})")
        if self.forest is not None:
            return self.forest.predict(matrix)
        return self.booster.inplace_predict(matrix, missing=self.transform.booster_missing, validate_features=False)

    def predict_instances(self, instances: Sequence[Any]) -> np.ndarray:
        """Validates, transforms and scores JSON-style instances.

        Raises:
            predictor.transform.InstanceError: An instance has a missing or ill-typed field.
        """
        return self.predict_matrix(self.transform.encode_instances(instances))


def compile_forest(booster: xgb.Booster, transform: FeatureTransform) -> BitmaskForest | None:
    """The booster's trees compiled for the transform's column layout, or ``None`` if unsupported."""
    try:
        return BitmaskForest.from_booster(
            booster, transform.n_outputs, range(len(transform.numeric)), transform.one_hot_blocks(),
            zero_is_missing=transform.zero_is_missing)
    except ForestUnsupported as exc:
        log.info("predicting with XGBoost: %s", exc)
        return None
