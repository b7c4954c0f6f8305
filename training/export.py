"""Writing a training run's artifact directory, atomically."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import xgboost as xgb

from predictor.artifacts import (
    MANIFEST_FILE,
    METADATA_FILE,
    METRICS_FILE,
    MODEL_FILE,
    PROFILE_FILE,
    TRANSFORM_FILE,
    verify,
    write_json,
    write_manifest,
)
from predictor.transform import FeatureTransform
from training.errors import OutputError


def check_output_dir(out: Path) -> Path:
    """Checks that an artifact directory can be written at ``out``; returns it absolute.

    ``out`` may be absent, an empty directory or an artifact directory (which a new one
    replaces). Anything else belongs to the user and is never replaced: ``--out .`` must not
    move a project aside and delete it.

    Raises:
        OutputError: ``out`` is a file, a directory holding other files, or not writable.
    """
    out = Path(out).absolute()
    if out.exists():
        if not out.is_dir():
            raise OutputError(f"{out} is a file, not a model directory; choose another output path")
        if not (out / MANIFEST_FILE).is_file() and any(out.iterdir()):
            raise OutputError(f"{out} holds files but is not a model directory (no {MANIFEST_FILE}); only a model "
                              "directory is replaced: choose another output path")
    existing = next(p for p in out.parents if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write to {existing}")
    return out


def write_artifact_dir(
    out: Path,
    *,
    booster: xgb.Booster,
    transform: FeatureTransform,
    metrics: dict[str, Any],
    profile: dict[str, Any],
    metadata: dict[str, Any],
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Writes the artifact directory that serving loads (see README, "The artifact directory").

    Files are written into a temporary sibling directory, checksummed, verified and only then
    renamed into place, so ``out`` is either the previous complete directory or the new one,
    never a half-written mix.

    Args:
        out: Destination directory: absent, empty, or an artifact directory that is replaced
            (:func:`check_output_dir`).
        booster: The trained model, saved in XGBoost's UBJ format.
        transform: The fitted feature transform.
        metrics: Evaluation metrics.
        profile: Training data profile for drift monitoring.
        metadata: Model name, target, parameters and other facts about the run.
        extra_json: Further JSON files to include, file name → content.

    Returns:
        The final directory.

    Raises:
        OutputError: ``out`` cannot be written or must not be replaced; nothing was changed.
    """
    out = check_output_dir(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot write to {out.parent}: {exc.strerror or exc}") from exc
    try:
        booster.save_model(str(staging / MODEL_FILE))
        transform.save(staging / TRANSFORM_FILE)
        write_json(staging / METRICS_FILE, metrics)
        write_json(staging / PROFILE_FILE, profile)
        write_json(staging / METADATA_FILE, metadata)
        for name, payload in (extra_json or {}).items():
            write_json(staging / name, payload)
        write_manifest(staging)
        verify(staging)
        os.chmod(staging, 0o755)  # mkdtemp creates 0700; the directory is meant to be shared
        _replace_dir(staging, out)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, permissions...: the previous directory is intact
            raise OutputError(f"{out}: the artifacts could not be written ({exc}); nothing was replaced") from exc
        raise
    return out


def _replace_dir(new: Path, out: Path) -> None:
    """Moves ``new`` to ``out``; an existing ``out`` is moved aside first, then removed."""
    if not out.exists():
        new.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    old.rmdir()
    out.rename(old)
    new.rename(out)
    shutil.rmtree(old, ignore_errors=True)
