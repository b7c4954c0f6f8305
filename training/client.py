"""Client helpers for a deployed model: scores and exact explanations from a Vertex AI endpoint.

Both go through ``Endpoint.predict`` (the server is ``LeadScoringPredictor``). Explanations are
requested with ``parameters={"explain": true}``; Vertex AI returns only the ``predictions``
array of the container's response, so each prediction then is an object
``{"score", "base_value", "attributions"}`` (see ``LeadScoringPredictor.postprocess``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from training.errors import LeadscoreError

DEFAULT_CHUNK = 1_000


@dataclass
class LeadExplanation:
    """One lead's score and its exact per-feature attributions (TreeSHAP).

    Attributes:
        score: The predicted conversion probability.
        base_value: The model's expected score; ``base_value + sum(attributions) == score``.
        attributions: Raw feature name → contribution to the score.
    """

    score: float
    base_value: float
    attributions: dict[str, float]

    @classmethod
    def from_prediction(cls, prediction: Any) -> LeadExplanation:
        """Parses one element of ``predictions`` of an explain request.

        Raises:
            LeadscoreError: The element is not an explanation (the server ignored ``explain``).
        """
        if not isinstance(prediction, Mapping) or not {"score", "base_value", "attributions"} <= prediction.keys():
            raise LeadscoreError(f"the server answered {type(prediction).__name__} without attributions; "
                                 "is the endpoint serving a leadscore model?")
        return cls(float(prediction["score"]), float(prediction["base_value"]),
                   {str(k): float(v) for k, v in prediction["attributions"].items()})

    def ranked(self) -> list[tuple[str, float]]:
        """``(feature, attribution)`` pairs, largest absolute contribution first."""
        return sorted(self.attributions.items(), key=lambda item: abs(item[1]), reverse=True)


def _endpoint(endpoint: Any) -> Any:
    from google.cloud import aiplatform

    return aiplatform.Endpoint(endpoint) if isinstance(endpoint, str) else endpoint


def _chunks(instances: Sequence[Mapping[str, Any]], size: int) -> Iterator[list[Mapping[str, Any]]]:
    for start in range(0, len(instances), size):
        yield list(instances[start:start + size])


def get_prediction(instances: Sequence[Mapping[str, Any]], endpoint: Any, chunk: int = DEFAULT_CHUNK) -> list[float]:
    """Scores leads on a Vertex AI endpoint.

    Args:
        instances: Leads keyed by raw feature name.
        endpoint: An ``aiplatform.Endpoint``, or its resource name or ID (in the project and
            location of ``aiplatform.init``).
        chunk: Instances per request (the server caps a request's size).

    Returns:
        One conversion probability per lead, in order.
    """
    endpoint = _endpoint(endpoint)
    scores: list[float] = []
    for part in _chunks(instances, chunk):
        scores.extend(float(p) for p in endpoint.predict(instances=part).predictions)
    return scores


def get_explanation(instances: Sequence[Mapping[str, Any]], endpoint: Any,
                    chunk: int = DEFAULT_CHUNK) -> list[LeadExplanation]:
    """Scores leads on a Vertex AI endpoint with exact per-feature attributions.

    Args:
        instances: Leads keyed by raw feature name.
        endpoint: An ``aiplatform.Endpoint``, or its resource name or ID.
        chunk: Instances per request.

    Returns:
        One explanation per lead, in order.
    """
    endpoint = _endpoint(endpoint)
    explanations: list[LeadExplanation] = []
    for part in _chunks(instances, chunk):
        response = endpoint.predict(instances=part, parameters={"explain": True})
        explanations.extend(LeadExplanation.from_prediction(p) for p in response.predictions)
    return explanations
