"""Model references: an artifact path or URI, ``name@alias`` or ``name@1.2.3``."""

from __future__ import annotations

from pathlib import Path

from training.errors import LeadscoreError

DEFAULT_MODEL_NAME = "lead-scoring"


def resolve_model(ref: str) -> str:
    """Resolves a model reference to an artifact URI that ``LeadScoringModel.load`` accepts.

    Args:
        ref: A local artifact directory, a ``gs://`` or ``file://`` URI, or a registry
            reference ``name@alias`` / ``name@1.2.3``.

    Returns:
        A local path or ``gs://`` URI.

    Raises:
        LeadscoreError: The reference names nothing that exists.
    """
    if ref.startswith(("gs://", "file://")) or Path(ref).exists():
        return ref
    if "@" in ref:
        raise LeadscoreError(f"{ref}: registry references need the model registry, which is not set up yet")
    raise LeadscoreError(f"{ref}: no such artifact directory (expected a path, gs:// URI, name@alias or name@1.2.3)")
