"""``LeadScoringPredictor``: the Vertex AI Custom Prediction Routine for lead scoring.

The CPR model server (``google.cloud.aiplatform.prediction.model_server.CprModelServer``) calls
``load`` once with ``AIP_STORAGE_URI``, then for every request
``postprocess(predict(preprocess(body)))``, where ``body`` is the decoded JSON request.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from fastapi import HTTPException
from google.cloud.aiplatform.prediction.predictor import Predictor

from predictor.explain import Explanations, explain_matrix
from predictor.model import LeadScoringModel
from predictor.prediction_log import open_prediction_log
from predictor.transform import InstanceError

DEFAULT_MAX_INSTANCES = 10_000
MAX_INSTANCES_ENV = "LEADSCORE_MAX_INSTANCES"
# Exact TreeSHAP costs about a millisecond per instance on one core (100 trees of depth 6), some
# hundred times a prediction; the request blocks its worker meanwhile, health checks included.
DEFAULT_MAX_EXPLAIN_INSTANCES = 1_000
MAX_EXPLAIN_INSTANCES_ENV = "LEADSCORE_MAX_EXPLAIN_INSTANCES"
# One XGBoost thread per request: the server's parallelism is its worker processes (the CPR image
# runs one per core), and an OpenMP team per request oversubscribes the cores. Measured here on
# 2 busy cores, a 64-row request took 0.4 ms with 1 thread and 20 ms with 2.
DEFAULT_PREDICT_THREADS = 1
PREDICT_THREADS_ENV = "LEADSCORE_PREDICT_THREADS"
# "numpy": the trees compiled by predictor/forest.py (XGBoost when the booster is not supported);
# "xgboost": always Booster.inplace_predict, e.g. to rule the evaluator out when investigating a score.
TREE_EVALUATOR_ENV = "LEADSCORE_TREE_EVALUATOR"
TREE_EVALUATORS = ("numpy", "xgboost")


@dataclass
class PreparedRequest:
    """A validated request on its way through predict and postprocess.

    Attributes:
        matrix: The model input matrix, one row per instance.
        parameters: The request's ``parameters`` object.
        predictions: Filled in by ``predict``.
        explanations: Filled in by ``predict`` when ``parameters.explain`` is true.
        body: The decoded request, kept for the prediction log.
    """

    matrix: np.ndarray
    parameters: dict[str, Any] = field(default_factory=dict)
    predictions: np.ndarray | None = None
    explanations: Explanations | None = None
    body: Any = None


def bad_request(message: str) -> HTTPException:
    """A 400 whose detail says what is wrong and where."""
    return HTTPException(status_code=400, detail=message)


class LeadScoringPredictor(Predictor):
    """Scores leads with the XGBoost model and fitted transform of one artifact directory.

    Configuration comes from the environment, as everything else in a serving container:
    ``LEADSCORE_MAX_INSTANCES`` caps the instances per request (default 10,000),
    ``LEADSCORE_MAX_EXPLAIN_INSTANCES`` those of a request with ``parameters.explain`` (default 1,000);
    ``LEADSCORE_PREDICT_THREADS`` sets XGBoost's threads per request (default 1);
    ``LEADSCORE_TREE_EVALUATOR`` is ``numpy`` (default: the compiled trees of
    ``predictor/forest.py``) or ``xgboost`` (``Booster.inplace_predict`` always).
    """

    def load(self, artifacts_uri: str, **kwargs: Any) -> None:
        """Loads and verifies the artifacts; refuses a missing or altered file.

        Args:
            artifacts_uri: ``AIP_STORAGE_URI``: a local directory (read in place) or
                ``gs://bucket/prefix`` (downloaded to a private temporary directory).
            **kwargs: Ignored; part of the CPR interface.
        """
        threads = int(os.environ.get(PREDICT_THREADS_ENV, DEFAULT_PREDICT_THREADS))
        evaluator = os.environ.get(TREE_EVALUATOR_ENV, TREE_EVALUATORS[0])
        if evaluator not in TREE_EVALUATORS:
            raise ValueError(f"{TREE_EVALUATOR_ENV}={evaluator!r}; expected one of {', '.join(TREE_EVALUATORS)}")
        self.model_ = LeadScoringModel.load(artifacts_uri, threads=threads, compile_trees=evaluator == "numpy")
        self.max_instances_ = int(os.environ.get(MAX_INSTANCES_ENV, DEFAULT_MAX_INSTANCES))
        self.max_explain_instances_ = int(os.environ.get(MAX_EXPLAIN_INSTANCES_ENV, DEFAULT_MAX_EXPLAIN_INSTANCES))
        # Off unless LEADSCORE_PREDICTION_LOG_DIR is set (see predictor/prediction_log.py).
        self.prediction_log_ = open_prediction_log(f"{self.model_.name}@{self.model_.version}")

    def preprocess(self, prediction_input: Any) -> PreparedRequest:
        """Validates the request body and builds the model input matrix with numpy.

        Raises:
            fastapi.HTTPException: 400 naming the field for a malformed body or instance,
                413 when the request holds more instances than the cap.
        """
        if not isinstance(prediction_input, dict):
            raise bad_request("request body must be a JSON object with an 'instances' array")
        instances = prediction_input.get("instances")
        if not isinstance(instances, list):
            raise bad_request("'instances' must be an array of objects keyed by feature name")
        if not instances:
            raise bad_request("'instances' is empty: send at least one instance")
        if len(instances) > self.max_instances_:
            raise HTTPException(
                status_code=413,
                detail=f"'instances' holds {len(instances)} instances; at most {self.max_instances_} per request",
            )
        parameters = prediction_input.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise bad_request("'parameters' must be an object")
        if not isinstance(parameters.get("explain", False), bool):
            raise bad_request("'parameters.explain' must be true or false")
        if parameters.get("explain") and len(instances) > self.max_explain_instances_:
            raise HTTPException(
                status_code=413,
                detail=f"'instances' holds {len(instances)} instances; at most {self.max_explain_instances_} "
                "per request with 'parameters.explain'",
            )
        try:
            matrix = self.model_.transform.encode_instances(instances)
        except InstanceError as exc:
            raise bad_request(str(exc)) from exc
        return PreparedRequest(matrix=matrix, parameters=parameters, body=prediction_input)

    def predict(self, instances: PreparedRequest) -> PreparedRequest:
        """Scores the prepared matrix: the compiled trees, or the booster's ``inplace_predict``."""
        instances.predictions = self.model_.predict_matrix(instances.matrix)
        if instances.parameters.get("explain"):
            instances.explanations = explain_matrix(self.model_.booster, self.model_.transform, instances.matrix)
        return instances

    def postprocess(self, prediction_results: PreparedRequest) -> dict[str, Any]:
        """Returns ``{"predictions": [...], "model_version": ...}`` as plain JSON types.

        With ``parameters.explain`` each prediction is an object ``{"score", "base_value",
        "attributions"}`` instead of a number: Vertex AI passes only ``predictions`` through to
        ``Endpoint.predict`` callers, so explanations must travel inside it.
        """
        predictions = prediction_results.predictions.tolist()
        explanations = prediction_results.explanations
        if explanations is not None:
            predictions = [{"score": score, **explanations.row(i)} for i, score in enumerate(predictions)]
        response = {
            "predictions": predictions,
            "model_version": self.model_.version,
        }
        if self.prediction_log_ is not None:
            self.prediction_log_.log(prediction_results.body, response)
        return response
