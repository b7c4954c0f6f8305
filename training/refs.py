"""Model references: an artifact path or URI, ``name@alias`` or ``name@1.2.3``."""

from __future__ import annotations

from pathlib import Path

from training.errors import LeadscoreError

DEFAULT_MODEL_NAME = "lead-scoring"


def resolve_model(ref: str) -> str:
    """Resolves a model reference to an artifact URI that ``LeadScoringModel.load`` accepts.

    Registry references are looked up in the configured registry (the local one in the state
    directory unless ``LEADSCORE_REGISTRY=vertex``), and the version's artifacts are verified.

    Args:
        ref: A local artifact directory, a ``gs://`` or ``file://`` URI, or a registry
            reference ``name@alias`` / ``name@1.2.3``.

    Returns:
        A local path or ``gs://`` URI.

    Raises:
        LeadscoreError: The reference names nothing that exists.
        predictor.artifacts.ArtifactError: The registered version's artifacts fail verification.
    """
    if ref.startswith(("gs://", "file://")) or Path(ref).exists():
        return ref
    if "@" in ref:
        from training.registry import open_registry

        registry = open_registry()
        version = registry.resolve(ref)
        registry.verify(version)  # an artifact that fails verification is never served
        return version.artifact_uri
    raise LeadscoreError(f"{ref}: no such artifact directory (expected a path, gs:// URI, name@alias or name@1.2.3)")
