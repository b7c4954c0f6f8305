"""The artifact directory: what a training run writes and what ``AIP_STORAGE_URI`` points at.

One format everywhere. Every file is plain data (XGBoost's UBJ model plus JSON), so loading
executes no code, and every file is listed with its sha256 in ``manifest.json``, which is
verified before anything is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_FILE = "model.ubj"
TRANSFORM_FILE = "transform.json"
METRICS_FILE = "metrics.json"
PROFILE_FILE = "profile.json"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "manifest.json"

ARTIFACT_FORMAT = "leadscore-artifact/1"
_CHUNK = 1 << 20


class ArtifactError(Exception):
    """An artifact directory is missing, incomplete, altered or of an unknown format."""


def sha256_file(path: Path) -> str:
    """Returns the hex sha256 of a file, read in chunks so large models stay out of memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json(path: Path, payload: Any) -> None:
    """Writes JSON deterministically (sorted keys) so identical content hashes identically."""
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: Path) -> Any:
    """Reads a JSON file."""
    return json.loads(path.read_text())


def package_versions() -> dict[str, str]:
    """The versions of the libraries whose behaviour the artifact depends on."""
    from importlib import metadata

    versions = {}
    for dist in ("xgboost", "scikit-learn", "numpy", "leadscore"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            # xgboost-cpu installs the module under another distribution name.
            if dist == "xgboost":
                import xgboost

                versions[dist] = xgboost.__version__
    return versions


def write_manifest(directory: Path, versions: dict[str, str] | None = None) -> dict[str, Any]:
    """Checksums every file of an artifact directory into ``manifest.json``.

    Args:
        directory: The artifact directory; every regular file in it (recursively) except the
            manifest itself is listed.
        versions: Library versions to record; defaults to the running interpreter's.

    Returns:
        The manifest that was written.
    """
    directory = Path(directory)
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        name = path.relative_to(directory).as_posix()
        if name == MANIFEST_FILE:
            continue
        files[name] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    manifest = {
        "format": ARTIFACT_FORMAT,
        "files": files,
        "versions": versions if versions is not None else package_versions(),
    }
    write_json(directory / MANIFEST_FILE, manifest)
    return manifest


def verify(directory: Path) -> dict[str, Any]:
    """Checks an artifact directory against its manifest.

    Args:
        directory: A local artifact directory.

    Returns:
        The manifest.

    Raises:
        ArtifactError: The manifest is missing or of another format, a required file is not
            listed, or a listed file is missing or its checksum differs.
    """
    directory = Path(directory)
    manifest_path = directory / MANIFEST_FILE
    if not manifest_path.is_file():
        raise ArtifactError(f"{directory}: no {MANIFEST_FILE}; not a leadscore artifact directory")
    try:
        manifest = read_json(manifest_path)
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: not valid JSON ({exc})") from exc
    if manifest.get("format") != ARTIFACT_FORMAT:
        raise ArtifactError(f"{manifest_path}: format {manifest.get('format')!r}, expected {ARTIFACT_FORMAT!r}")
    files = manifest.get("files", {})
    for required in (MODEL_FILE, TRANSFORM_FILE, METADATA_FILE):
        if required not in files:
            raise ArtifactError(f"{manifest_path}: required file {required} is not listed")
    for name, entry in files.items():
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{directory}: {name} is listed in the manifest but missing")
        if sha256_file(path) != entry["sha256"]:
            raise ArtifactError(f"{directory}: {name} does not match its sha256 in the manifest (altered or corrupt)")
    return manifest


@dataclass
class LocalArtifacts:
    """A verified artifact directory on local disk.

    Attributes:
        path: Where the files are.
        manifest: The verified manifest.
        temporary: True when ``path`` is a private download that ``cleanup`` removes.
    """

    path: Path
    manifest: dict[str, Any]
    temporary: bool = False

    def cleanup(self) -> None:
        """Removes a private download; a user's local directory is never touched."""
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def gcs_relative_name(prefix: str, blob_name: str) -> str | None:
    """The path of a blob below an artifact prefix, or None when it is not below it.

    The match is on whole path segments: ``models/1`` covers ``models/1/model.ubj`` but not
    ``models/10/model.ubj`` (the SDK's own downloader matches plain string prefixes).
    """
    folder = prefix.strip("/") + "/"
    if not blob_name.startswith(folder) or blob_name.endswith("/"):
        return None
    return blob_name[len(folder):]


def _download_gcs(uri: str, client: Any = None) -> Path:
    from google.cloud import storage

    bucket_name, _, prefix = uri[len("gs://"):].partition("/")
    client = client or storage.Client()
    target = Path(tempfile.mkdtemp(prefix="leadscore-artifacts-"))
    found = 0
    try:
        for blob in client.list_blobs(bucket_name, prefix=prefix.strip("/") + "/"):
            relative = gcs_relative_name(prefix, blob.name)
            if relative is None:
                continue
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(destination))
            found += 1
    except Exception:
        shutil.rmtree(target, ignore_errors=True)
        raise
    if not found:
        shutil.rmtree(target, ignore_errors=True)
        raise ArtifactError(f"{uri}: no files below this prefix")
    return target


def open_artifacts(uri: str | os.PathLike[str], gcs_client: Any = None) -> LocalArtifacts:
    """Resolves an artifact URI to a verified local directory.

    A local directory (or ``file://`` URI) is read in place: nothing is copied into the
    working directory. A ``gs://bucket/prefix`` is downloaded into a private temporary
    directory with an exact prefix match.

    Args:
        uri: A local path, ``file://`` URI or ``gs://`` URI.
        gcs_client: A ``google.cloud.storage.Client`` to use instead of the default one.

    Returns:
        The verified local artifacts.

    Raises:
        ArtifactError: The location holds no valid artifact directory.
    """
    text = os.fspath(uri)
    if text.startswith("gs://"):
        path = _download_gcs(text, gcs_client)
        try:
            return LocalArtifacts(path, verify(path), temporary=True)
        except ArtifactError:
            shutil.rmtree(path, ignore_errors=True)
            raise
    if text.startswith("file://"):
        text = text[len("file://"):]
    path = Path(text)
    if not path.is_dir():
        raise ArtifactError(f"{text}: no such artifact directory")
    return LocalArtifacts(path, verify(path))
