"""The Vertex AI Model Registry backend, through google-cloud-aiplatform.

Mapping of the registry onto Vertex AI:

- A model name is one Vertex AI model (display name = the name, label ``leadscore-model=<name>``);
  each registered version is a Vertex AI model version uploaded with ``Model.upload(parent_model=…)``.
- The semantic version goes into the label ``semver`` with dots (and any other character a label
  value may not hold) replaced by dashes: ``1.2.3`` → ``semver=1-2-3``, ``1.0.3-rc.1`` →
  ``semver=1-0-3-rc-1``. Labels ``leadscore-model``, ``managed-by=leadscore``, and when known
  ``run-id`` and ``data-fingerprint`` (sanitised, at most 63 characters) are added. Labels are
  for filtering; the exact values live in ``version_description``: a JSON object with the
  semver, artifact URI, metrics, data fingerprint, run ID, training parameters, input schema
  and registration time.
- The champion carries the aliases ``champion`` and ``default`` (so deployments that name no
  version get the champion). A rejected challenger is uploaded with ``is_default_version=False``
  and no alias. Vertex AI keeps an alias on one version at a time: adding it moves it.
- Artifacts are uploaded to ``<registry URI>/<name>/<version>-<upload id>/`` (``manifest.json``
  last, so a partial upload is never loadable), then the model version is created pointing at
  them: the model version is the last thing written.
- The promotion log is one JSON object per event under ``<registry URI>/<name>/promotion-log/``,
  created with ``ifGenerationMatch=0`` so an entry is never overwritten.

Unlike the local backend, Vertex AI offers no transaction across these calls: run the
registrations of one model from one place at a time (the training pipeline). Whatever happens,
the champion alias is on one version only, and a version's files are verified (manifest
sha256s) before the serving container loads them.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from predictor.artifacts import MANIFEST_FILE, open_artifacts, verify
from training.errors import RegistryError
from training.registry.base import (
    CHAMPION,
    ModelVersion,
    PromotionEvent,
    Registry,
    Session,
    is_version,
    load_model_at,
    select,
    sort_versions,
)

if TYPE_CHECKING:
    from predictor.model import LeadScoringModel

DEFAULT_ALIAS = "default"
NAME_LABEL = "leadscore-model"
SEMVER_LABEL = "semver"
MANAGED_BY = {"managed-by": "leadscore"}
LOG_FOLDER = "promotion-log"
PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"
# The CPR serving image is built and pushed by `leadscore image build` (issue 6); it must be set.
SERVING_IMAGE_PLACEHOLDER = "REGION-docker.pkg.dev/PROJECT/REPOSITORY/leadscore:TAG"
_LABEL_VALUE_MAX = 63
T = TypeVar("T")


def label_value(text: str) -> str:
    """A legal Vertex AI label value: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", text.lower())[:_LABEL_VALUE_MAX]


def version_labels(record: ModelVersion) -> dict[str, str]:
    """The labels of a model version (see the module docstring)."""
    labels = {NAME_LABEL: record.name, SEMVER_LABEL: label_value(record.version), **MANAGED_BY}
    if record.run_id:
        labels["run-id"] = label_value(record.run_id)
    if record.data_fingerprint:
        labels["data-fingerprint"] = label_value(record.data_fingerprint)
    return labels


def version_description(record: ModelVersion) -> str:
    """The JSON ``version_description`` of a model version: the registry's full record."""
    payload = record.to_dict()
    payload["semver"] = payload.pop("version")
    for key in ("aliases", "resource_name", "name"):
        payload.pop(key)
    return json.dumps(payload, sort_keys=True)


def parse_description(name: str, description: str | None, resource_name: str,
                      aliases: list[str]) -> ModelVersion | None:
    """A registry record from a version's description; None for a version leadscore did not write."""
    try:
        payload = json.loads(description or "")
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("semver"), str):
        return None
    return ModelVersion(
        name=name, version=payload["semver"], artifact_uri=payload.get("artifact_uri", ""),
        aliases=tuple(sorted(aliases)), metrics=payload.get("metrics") or {},
        data_fingerprint=payload.get("data_fingerprint"), run_id=payload.get("run_id"),
        params=payload.get("params") or {}, schema=payload.get("schema") or {},
        created_at=payload.get("created_at", ""), resource_name=resource_name,
    )


@contextmanager
def cloud_errors() -> Iterator[None]:
    """Turns Google API and authentication errors into ``RegistryError`` (a message, not a traceback)."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError

    try:
        yield
    except (GoogleAPIError, GoogleAuthError) as exc:
        raise RegistryError(f"Vertex AI registry: {exc}") from exc


def _cloud_call(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with cloud_errors():
            return method(*args, **kwargs)

    return wrapper


def _split_gcs(uri: str) -> tuple[str, str]:
    if not uri.startswith("gs://"):
        raise RegistryError(f"{uri}: the Vertex AI registry needs a gs:// URI for artifacts and its log")
    bucket, _, prefix = uri[len("gs://"):].partition("/")
    return bucket, prefix.strip("/")


class VertexRegistry(Registry):
    """The registry on Vertex AI Model Registry, artifacts and promotion log in Cloud Storage.

    Args:
        project: Google Cloud project.
        location: Vertex AI region.
        registry_uri: ``gs://bucket/prefix`` for version artifacts and the promotion log.
        serving_image: The CPR serving image URI (needed to register; not to read or promote).
        credentials: Credentials (default: Application Default Credentials).
        api_endpoint: Vertex AI API endpoint override (private endpoints, tests).
        storage_client: A ``google.cloud.storage.Client`` (default: one for ``project``).
    """

    def __init__(
        self,
        project: str,
        location: str,
        registry_uri: str,
        serving_image: str | None = None,
        credentials: Any = None,
        api_endpoint: str | None = None,
        storage_client: Any = None,
    ):
        self.project = project
        self.location = location
        self.registry_uri = registry_uri.rstrip("/")
        self.serving_image = serving_image
        self.credentials = credentials
        self.api_endpoint = api_endpoint
        self.storage_client = storage_client

    # SDK access ----------------------------------------------------------------------------------

    def _aiplatform(self) -> Any:
        from google.cloud import aiplatform

        # api_endpoint and the transport are global SDK settings; set them before every use so
        # that two registries in one process (tests) never talk to each other's endpoint.
        aiplatform.init(project=self.project, location=self.location, credentials=self.credentials,
                        api_endpoint=self.api_endpoint, api_transport="rest")
        return aiplatform

    def _gcs(self) -> Any:
        if self.storage_client is None:
            from google.cloud import storage

            self.storage_client = storage.Client(project=self.project, credentials=self.credentials)
        return self.storage_client

    def _models(self, name: str | None) -> list[Any]:
        """The Vertex AI models holding leadscore versions (of one name, or all)."""
        aiplatform = self._aiplatform()
        query = f'labels.{NAME_LABEL}="{name}"' if name else f"labels.{NAME_LABEL}:*"
        models = aiplatform.Model.list(filter=query, project=self.project, location=self.location,
                                       credentials=self.credentials)
        if name and len(models) > 1:
            raise RegistryError(f"{name}: {len(models)} Vertex AI models carry {NAME_LABEL}={name}; expected one")
        return models

    def _model_registry(self, model_resource_name: str) -> Any:
        aiplatform = self._aiplatform()
        return aiplatform.models.ModelRegistry(model_resource_name, location=self.location, project=self.project,
                                               credentials=self.credentials)

    def _versions_of(self, model: Any, filter: str | None = None) -> list[ModelVersion]:
        name = model.labels.get(NAME_LABEL, model.display_name)
        versions = []
        for info in self._model_registry(model.resource_name).list_versions(filter=filter):
            record = parse_description(name, info.version_description,
                                       f"{info.model_resource_name}@{info.version_id}", list(info.version_aliases))
            if record is not None:
                versions.append(record)
        return sort_versions(versions)

    # Reads ---------------------------------------------------------------------------------------

    @_cloud_call
    def versions(self, name: str | None = None) -> list[ModelVersion]:
        return sort_versions([v for model in self._models(name) for v in self._versions_of(model)])

    @_cloud_call
    def get(self, name: str, selector: str) -> ModelVersion:
        """Looks the version up on the server: by the ``semver`` label, or by alias (``models/ID@alias``)."""
        models = self._models(name)
        if not models:
            raise RegistryError(f"{name}: no such model in the Vertex AI registry")
        if is_version(selector):
            found = self._versions_of(models[0], filter=f'labels.{SEMVER_LABEL}="{label_value(selector)}"')
            return select(found, name, selector)  # the label is lossy; the description is exact
        from google.api_core.exceptions import NotFound

        try:
            model = self._model_registry(models[0].resource_name).get_model(version=selector)
        except NotFound as exc:
            raise RegistryError(f"{name}@{selector}: no such version or alias ({exc})") from exc
        resource = model.gca_resource
        record = parse_description(name, resource.version_description, model.versioned_resource_name,
                                   list(resource.version_aliases))
        if record is None:
            raise RegistryError(f"{name}@{selector}: Vertex AI version {model.version_id} was not registered "
                                "by leadscore")
        return replace(record, artifact_uri=resource.artifact_uri or record.artifact_uri)

    @_cloud_call
    def history(self, name: str | None = None) -> list[PromotionEvent]:
        names = [name] if name else sorted({m.labels.get(NAME_LABEL) for m in self._models(None)})
        bucket, prefix = _split_gcs(self.registry_uri)
        events = []
        for model_name in names:
            folder = f"{prefix}/{model_name}/{LOG_FOLDER}/".lstrip("/")
            for blob in self._gcs().list_blobs(bucket, prefix=folder):
                events.append(PromotionEvent.from_dict(json.loads(blob.download_as_bytes())))
        return sorted(events, key=lambda e: e.at)

    @_cloud_call
    def verify(self, version: ModelVersion) -> dict[str, Any]:
        artifacts = open_artifacts(version.artifact_uri, gcs_client=self._gcs())
        artifacts.cleanup()
        return artifacts.manifest

    @_cloud_call
    def load_model(self, version: ModelVersion) -> LeadScoringModel:
        return load_model_at(version.artifact_uri, gcs_client=self._gcs())

    # Changes -------------------------------------------------------------------------------------

    @contextmanager
    def _session(self, name: str) -> Iterator[Session]:
        with cloud_errors():
            models = self._models(name)
        workdir = Path(tempfile.mkdtemp(prefix="leadscore-vertex-"))
        try:
            with cloud_errors():
                yield _VertexSession(self, name, models[0] if models else None, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def upload_artifacts(self, staged: Path, uri: str) -> None:
        """Uploads a verified artifact directory, ``manifest.json`` last."""
        manifest = verify(staged)
        bucket_name, prefix = _split_gcs(uri)
        bucket = self._gcs().bucket(bucket_name)
        for name in [*manifest["files"], MANIFEST_FILE]:
            bucket.blob(f"{prefix}/{name}").upload_from_filename(str(staged / name))

    def append_event(self, event: PromotionEvent) -> None:
        """Writes one promotion-log object; ``ifGenerationMatch=0`` refuses to overwrite one."""
        bucket_name, prefix = _split_gcs(self.registry_uri)
        stamp = re.sub(r"[^0-9]", "", event.at)
        blob = self._gcs().bucket(bucket_name).blob(
            f"{prefix}/{event.name}/{LOG_FOLDER}/{stamp}-{uuid.uuid4().hex[:8]}.json".lstrip("/"))
        blob.upload_from_string(json.dumps(event.to_dict(), sort_keys=True), content_type="application/json",
                                if_generation_match=0)


class _VertexSession(Session):
    """A change on Vertex AI: reads go to the server each time; there is no lock."""

    def __init__(self, registry: VertexRegistry, name: str, model: Any, workdir: Path):
        self.registry = registry
        self.name = name
        self.model = model
        self.workdir = workdir

    def versions(self) -> list[ModelVersion]:
        return self.registry._versions_of(self.model) if self.model is not None else []

    def history(self) -> list[PromotionEvent]:
        return self.registry.history(self.name)

    def staging_dir(self) -> Path:
        return self.workdir

    def add_version(self, staged: Path, record: ModelVersion, champion: bool) -> ModelVersion:
        image = self.registry.serving_image
        if not image or image == SERVING_IMAGE_PLACEHOLDER:
            raise RegistryError("registering on Vertex AI needs the CPR serving image URI: set --serving-image or "
                                f"LEADSCORE_SERVING_IMAGE (e.g. {SERVING_IMAGE_PLACEHOLDER})")
        uri = f"{self.registry.registry_uri}/{record.name}/{record.version}-{uuid.uuid4().hex[:8]}"
        self.registry.upload_artifacts(staged, uri)
        record = replace(record, artifact_uri=uri)
        aiplatform = self.registry._aiplatform()
        uploaded = aiplatform.Model.upload(
            display_name=record.name,
            parent_model=self.model.resource_name if self.model is not None else None,
            artifact_uri=uri,
            serving_container_image_uri=image,
            serving_container_predict_route=PREDICT_ROUTE,
            serving_container_health_route=HEALTH_ROUTE,
            version_aliases=[CHAMPION] if champion else None,
            is_default_version=champion,
            labels=version_labels(record),
            version_description=version_description(record),
            project=self.registry.project,
            location=self.registry.location,
            credentials=self.registry.credentials,
        )
        if self.model is None:
            self.model = uploaded
        return replace(record, aliases=tuple(sorted(uploaded.version_aliases)),
                       resource_name=uploaded.versioned_resource_name)

    def move_champion(self, version: ModelVersion) -> None:
        model_name, _, version_id = (version.resource_name or "").partition("@")
        if not version_id:
            raise RegistryError(f"{version.ref}: no Vertex AI version ID known")
        self.registry._model_registry(model_name).add_version_aliases([CHAMPION, DEFAULT_ALIAS], version=version_id)

    def append(self, event: PromotionEvent) -> PromotionEvent:
        self.registry.append_event(event)
        return event
