"""The Vertex AI registry backend at the wire: the real aiplatform and storage SDKs (anonymous
credentials, REST transport) against a local HTTP fake of the endpoints they call."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from predictor.model import LeadScoringModel
from tests.vertex_fake import FakeApi, GcsObjects, VertexModels, service_account_key
from training.errors import RegistryError
from training.registry.base import CHAMPION
from training.registry.promotion import Holdout
from training.registry.vertex import NAME_LABEL, SERVING_IMAGE_PLACEHOLDER, VertexRegistry, label_value

PROJECT, LOCATION = "test-project", "us-central1"
IMAGE = "us-central1-docker.pkg.dev/test-project/leadscore/leadscore:1.0.0"
WEAK = {"max_depth": 1, "n_estimators": 10}
STRONG = {"max_depth": 4, "n_estimators": 60}
MODELS = rf"/v1/projects/{PROJECT}/locations/{LOCATION}/models"


class Fake:
    """The fake API server with the Vertex AI models and Cloud Storage state."""

    def __init__(self) -> None:
        self.api = FakeApi().start()
        self.models = VertexModels().install(self.api)
        self.gcs = GcsObjects().install(self.api)

    def uploads(self) -> list[dict]:
        return [r.json for r in self.api.calls("POST", MODELS + ":upload")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    from google.cloud import aiplatform
    from google.cloud.aiplatform import initializer

    # aiplatform.init settings (endpoint, credentials) are process-global: start each test afresh.
    config = initializer._Config()
    monkeypatch.setattr(initializer, "global_config", config)
    monkeypatch.setattr(aiplatform, "init", config.init)
    fake = Fake()
    yield fake
    fake.api.stop()
    assert fake.api.errors == []


def vertex_registry(fake: Fake, serving_image: str | None = IMAGE) -> VertexRegistry:
    gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                         client_options=ClientOptions(api_endpoint=fake.api.url))
    return VertexRegistry(PROJECT, LOCATION, "gs://bucket/registry", serving_image,
                          credentials=AnonymousCredentials(), api_endpoint=fake.api.url, storage_client=gcs)


@pytest.fixture
def registry(fake: Fake, monkeypatch: pytest.MonkeyPatch) -> VertexRegistry:
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never probe the metadata server
    return vertex_registry(fake)


def register(registry: VertexRegistry, run):
    return registry.register(run.out, Holdout.from_result(run))


def test_first_version_is_uploaded_as_champion(registry: VertexRegistry, fake: Fake, synth_run):
    run = synth_run(**WEAK)
    registration = register(registry, run)

    lookup = fake.api.calls("GET", MODELS)[0]
    assert lookup.param("filter") == f'labels.{NAME_LABEL}="lead-scoring"'
    (upload,) = fake.uploads()
    model = upload["model"]
    assert "parentModel" not in upload
    assert model["displayName"] == "lead-scoring"
    assert sorted(model["versionAliases"]) == [CHAMPION, "default"]
    metadata = json.loads((run.out / "metadata.json").read_text())
    fingerprint = metadata["data"]["fingerprint"]["sha256"]
    assert model["labels"] == {NAME_LABEL: "lead-scoring", "semver": "1-0-0", "managed-by": "leadscore",
                               "run-id": label_value(metadata["run_id"]), "data-fingerprint": fingerprint[:63]}
    assert model["containerSpec"] == {"imageUri": IMAGE, "predictRoute": "/predict", "healthRoute": "/health"}
    artifact_uri = model["artifactUri"]
    assert artifact_uri.startswith("gs://bucket/registry/lead-scoring/1.0.0-")
    description = json.loads(model["versionDescription"])
    assert description["semver"] == "1.0.0" and description["artifact_uri"] == artifact_uri
    assert description["metrics"] == json.loads((run.out / "metrics.json").read_text())
    assert description["schema"]["industry"] == "categorical" and description["params"]["max_depth"] == 1
    assert (description["data_fingerprint"], description["run_id"]) == (fingerprint, metadata["run_id"])

    # The artifacts went up first, manifest last, and load (verified) as version 1.0.0.
    prefix = artifact_uri[len("gs://bucket/"):]
    uploaded = [json.loads(r.body.split(b"\r\n\r\n", 2)[1].split(b"\r\n")[0])["name"]
                for r in fake.api.calls("POST", r"/upload/storage/v1/b/bucket/o")]
    files = [name for name in uploaded if name.startswith(prefix)]
    assert files[-1] == f"{prefix}/manifest.json" and len(files) == len(list(run.out.iterdir()))
    assert fake.api.requests.index(fake.api.calls("POST", MODELS + ":upload")[0]) > max(
        fake.api.requests.index(r) for r in fake.api.calls("POST", r"/upload/storage/v1/b/bucket/o")[:len(files)])
    assert LeadScoringModel.load(artifact_uri, gcs_client=registry.storage_client).version == "1.0.0"

    assert registration.version.version == "1.0.0" and registration.version.is_champion
    assert registration.version.resource_name.endswith("@1")
    # The decision is in the promotion log, one object written with ifGenerationMatch=0.
    (log_write,) = [r for r in fake.api.calls("POST", r"/upload/storage/v1/b/bucket/o")
                    if b"promotion-log" in r.body]
    assert log_write.param("ifGenerationMatch") == "0"
    assert [(e.action, e.version) for e in registry.history("lead-scoring")] == [("promote", "1.0.0")]


def test_challengers_become_versions_of_the_same_model(registry: VertexRegistry, fake: Fake, synth_run):
    weak, strong = synth_run(**WEAK), synth_run(**STRONG)
    first = register(registry, weak)
    promoted = register(registry, strong)
    rejected = register(registry, weak)

    _, second_upload, third_upload = fake.uploads()
    parent = first.version.resource_name.split("@")[0]
    assert second_upload["parentModel"] == parent == third_upload["parentModel"]
    assert sorted(second_upload["model"]["versionAliases"]) == [CHAMPION, "default"]
    assert second_upload["model"]["labels"]["semver"] == "1-0-1"
    # A rejected challenger: no alias, not the default version, a pre-release number.
    assert not third_upload["model"].get("versionAliases")
    assert third_upload["model"]["labels"]["semver"] == "1-0-2-rc-1"
    assert (promoted.version.version, rejected.version.version) == ("1.0.1", "1.0.2-rc.1")
    assert rejected.event.action == "reject" and rejected.event.champion_rmse < rejected.event.challenger_rmse

    # Server state: the champion/default aliases moved to version 2 and stayed there.
    versions = fake.models.models[parent.rsplit("/", 1)[-1]]
    assert [sorted(v["versionAliases"]) for v in versions] == [[], [CHAMPION, "default"], []]
    listed = registry.versions("lead-scoring")
    assert [(v.version, v.is_champion) for v in listed] == [("1.0.0", False), ("1.0.1", True), ("1.0.2-rc.1", False)]
    assert [e.action for e in registry.history()] == ["promote", "promote", "reject"]


def test_lookups_by_semver_and_alias(registry: VertexRegistry, fake: Fake, synth_run):
    register(registry, synth_run(**WEAK))
    register(registry, synth_run(**STRONG))
    by_version = registry.get("lead-scoring", "1.0.0")
    assert fake.api.calls("GET", MODELS + r"/\d+:listVersions")[-1].param("filter") == 'labels.semver="1-0-0"'
    assert by_version.version == "1.0.0" and not by_version.is_champion
    champion = registry.resolve("lead-scoring@champion")
    assert fake.api.calls("GET", MODELS + r"/\d+@champion")
    assert champion.version == "1.0.1" and champion.artifact_uri.startswith("gs://bucket/registry/lead-scoring/1.0.1-")
    registry.verify(champion)  # downloads and checks the manifest
    with pytest.raises(RegistryError, match="no such version"):
        registry.get("lead-scoring", "7.0.0")


def test_rollback_and_manual_promotion_move_aliases(registry: VertexRegistry, fake: Fake, synth_run):
    register(registry, synth_run(**WEAK))
    register(registry, synth_run(**STRONG))
    rolled = registry.rollback("lead-scoring")
    merge = fake.api.calls("POST", MODELS + r"/\d+@\d+:mergeVersionAliases")[-1]
    assert merge.path.endswith("@1:mergeVersionAliases")
    assert sorted(merge.json["versionAliases"]) == [CHAMPION, "default"]
    assert (rolled.version.version, rolled.event.previous_champion) == ("1.0.0", "1.0.1")
    assert registry.get("lead-scoring", CHAMPION).version == "1.0.0"

    promoted = registry.promote("lead-scoring@1.0.1", reason="rollback was a false alarm")
    assert fake.api.calls("POST", MODELS + r"/\d+@\d+:mergeVersionAliases")[-1].path.endswith("@2:mergeVersionAliases")
    assert promoted.event.action == "manual-promote"
    assert [(e.action, e.version, e.previous_champion) for e in registry.history("lead-scoring")] == [
        ("promote", "1.0.0", None), ("promote", "1.0.1", "1.0.0"), ("rollback", "1.0.0", "1.0.1"),
        ("manual-promote", "1.0.1", "1.0.0")]


def test_registration_needs_the_serving_image(fake: Fake, synth_run, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    for image in (None, SERVING_IMAGE_PLACEHOLDER):
        with pytest.raises(RegistryError, match="LEADSCORE_SERVING_IMAGE"):
            register(vertex_registry(fake, serving_image=image), synth_run(**WEAK))
    # Refused before anything was written.
    assert fake.uploads() == [] and fake.gcs.objects == {}


@pytest.mark.parametrize(("text", "label"), [("1.2.3", "1-2-3"), ("1.0.3-rc.1", "1-0-3-rc-1"),
                                             ("Run_42/Trial.7", "run_42-trial-7"), ("x" * 80, "x" * 63)])
def test_label_values_are_legal(text: str, label: str):
    assert label_value(text) == label


def test_rescoring_downloads_the_champion(registry: VertexRegistry, fake: Fake, synth_run, tmp_path: Path):
    register(registry, synth_run(**WEAK))
    downloads_before = len(fake.api.calls("GET", r"/download/storage/v1/b/bucket/o/.*"))
    strong = register(registry, synth_run(**STRONG)).event
    assert len(fake.api.calls("GET", r"/download/storage/v1/b/bucket/o/.*")) > downloads_before
    assert strong.rows == len(synth_run(**STRONG).holdout_target) and strong.champion_rmse is not None


def test_cli_and_refs_with_the_vertex_backend(fake: Fake, synth_parquet: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch):
    """The configuration path users take: the environment, Application Default Credentials (a
    service-account key; google-auth signs its own JWT), STORAGE_EMULATOR_HOST for Cloud Storage."""
    credentials = service_account_key(tmp_path / "key.json", PROJECT, f"{fake.api.url}/token")
    for name, value in {"GOOGLE_APPLICATION_CREDENTIALS": str(credentials), "STORAGE_EMULATOR_HOST": fake.api.url,
                        "NO_GCE_CHECK": "true", "LEADSCORE_HOME": str(tmp_path / "home"),
                        "LEADSCORE_REGISTRY": "vertex", "GOOGLE_CLOUD_PROJECT": PROJECT,
                        "GOOGLE_CLOUD_REGION": LOCATION, "LEADSCORE_REGISTRY_URI": "gs://bucket/registry",
                        "LEADSCORE_SERVING_IMAGE": IMAGE, "LEADSCORE_VERTEX_ENDPOINT": fake.api.url}.items():
        monkeypatch.setenv(name, value)
    from typer.testing import CliRunner

    from training.cli import app
    from training.refs import resolve_model

    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--data", str(synth_parquet), "--out", str(tmp_path / "model"),
                                  "--register", "--json"])
    assert trained.exit_code == 0, trained.output
    registration = json.loads(trained.stdout[trained.stdout.index("{"):])["registration"]
    assert registration["version"]["version"] == "1.0.0" and registration["promoted"]
    (upload,) = fake.api.calls("POST", MODELS + ":upload")
    scheme, _, token = upload.headers["authorization"].partition(" ")
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert scheme == "Bearer" and claims["iss"] == f"leadscore@{PROJECT}.iam.gserviceaccount.com"

    uri = resolve_model("lead-scoring@champion")
    assert uri == upload.json["model"]["artifactUri"]
    listed = runner.invoke(app, ["registry", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [(v["version"], v["verified"]) for v in json.loads(listed.stdout)] == [("1.0.0", True)]
    assert not (tmp_path / "home" / "registry").exists()  # nothing went to the local registry


def test_api_errors_become_registry_errors(fake: Fake, synth_run, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    fake.api.routes.clear()  # every call now gets the API's 404 error
    registry = vertex_registry(fake)
    with pytest.raises(RegistryError, match="Vertex AI registry: 404"):
        registry.versions()
    with pytest.raises(RegistryError, match="Vertex AI registry: 404"):
        register(registry, synth_run(**WEAK))
