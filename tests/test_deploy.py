"""Deployment, Vertex AI batch prediction and the endpoint client at the wire: the real aiplatform SDK
(anonymous credentials, REST) against the local Vertex AI fake, and the real CPR server behind ``:predict``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform, storage
from typer.testing import CliRunner

from predictor.model import LeadScoringModel
from tests.vertex_fake import FakeApi, GcsObjects, VertexModels, service_account_key
from tests.vertex_serving_fake import BatchPredictionJobs, CprModels, VertexEndpoints
from training.cli import app
from training.client import get_explanation, get_prediction
from training.deploy import DeployConfig, DeployError, deploy
from training.errors import RegistryError
from training.registry.vertex import VertexRegistry
from training.synth import EXAMPLE_LEAD, generate_leads
from training.vertex_batch import VertexBatchConfig, VertexBatchError, submit_batch_job

PROJECT, LOCATION = "test-project", "us-central1"
IMAGE = "us-central1-docker.pkg.dev/test-project/leadscore/leadscore:1.0.0"
BASE = f"/v1/projects/{PROJECT}/locations/{LOCATION}"
ENDPOINTS = BASE + "/endpoints"


class Fake:
    """The Vertex AI fake: models (deployable), Cloud Storage, endpoints and batch jobs."""

    def __init__(self, models: VertexModels | None = None) -> None:
        self.api = FakeApi().start()
        self.models = (models or CprModels()).install(self.api)
        self.gcs = GcsObjects().install(self.api)
        self.endpoints = VertexEndpoints().install(self.api)
        self.jobs = BatchPredictionJobs().install(self.api)

    def registry(self) -> VertexRegistry:
        gcs = storage.Client(project=PROJECT, credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=self.api.url))
        return VertexRegistry(PROJECT, LOCATION, "gs://bucket/registry", IMAGE, credentials=AnonymousCredentials(),
                              api_endpoint=self.api.url, storage_client=gcs)

    def deploy_calls(self) -> list[dict]:
        return [r.json for r in self.api.calls("POST", ENDPOINTS + r"/\d+:deployModel")]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never probe the metadata server
    fake = Fake()
    yield fake
    fake.api.stop()
    assert fake.api.errors == []


@pytest.fixture
def versions(fake: Fake, synth_run) -> list[str]:
    """Three versions registered (each made champion by hand) on the Vertex AI registry."""
    registry = fake.registry()
    runs = [synth_run(max_depth=2, n_estimators=10), synth_run(max_depth=3, n_estimators=20), synth_run()]
    return [registry.promote(str(run.out)).version.ref for run in runs]


def test_first_deployment_creates_the_endpoint_with_request_logging(fake: Fake, versions):
    result = deploy(fake.registry(), versions[0], DeployConfig(endpoint="leads", traffic=10))

    create = fake.api.calls("POST", ENDPOINTS)[0].json
    assert create["displayName"] == "leads" and create["labels"] == {"managed-by": "leadscore"}
    assert create["predictRequestResponseLoggingConfig"]["enabled"] is True
    assert create["predictRequestResponseLoggingConfig"]["samplingRate"] == 1.0
    assert result.created_endpoint and result.newly_deployed
    assert result.logging_table == f"bq://{PROJECT}.logging_leads_5001.request_response_logging"
    (call,) = fake.deploy_calls()
    assert call["trafficSplit"] == {"0": 100}  # the first version takes all traffic whatever --traffic says
    assert result.traffic_split == {result.deployed_model_id: 100}


def test_canary_gets_its_share_on_dedicated_resources(fake: Fake, versions):
    registry = fake.registry()
    first = deploy(registry, versions[0], DeployConfig(endpoint="leads"))
    canary = deploy(registry, versions[1], DeployConfig(endpoint="leads", traffic=10,
                                                                  logging_table="bq://p.d.ignored"))

    assert len(fake.api.calls("POST", ENDPOINTS)) == 1  # the endpoint is found by name, not created again
    call = fake.deploy_calls()[1]
    assert call["deployedModel"]["model"] == registry.resolve(versions[1]).resource_name
    assert call["deployedModel"]["dedicatedResources"] == {
        "machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1, "maxReplicaCount": 2}
    assert call["trafficSplit"] == {"0": 10, first.deployed_model_id: 90}
    assert canary.traffic_split == {canary.deployed_model_id: 10, first.deployed_model_id: 90}
    assert not canary.created_endpoint and canary.newly_deployed


def test_promote_traffic_moves_everything_to_the_version_without_redeploying(fake: Fake, versions):
    registry = fake.registry()
    first = deploy(registry, versions[0], DeployConfig(endpoint="leads"))
    deploy(registry, versions[1], DeployConfig(endpoint="leads", traffic=25))
    promoted = deploy(registry, versions[1], DeployConfig(endpoint="leads", promote_traffic=True))

    assert len(fake.deploy_calls()) == 2 and not promoted.newly_deployed
    update = fake.api.calls("PATCH", ENDPOINTS + r"/\d+")[-1]
    assert update.param("updateMask") == "trafficSplit"
    assert update.json["trafficSplit"] == {promoted.deployed_model_id: 100, first.deployed_model_id: 0}
    assert promoted.traffic_split == {promoted.deployed_model_id: 100, first.deployed_model_id: 0}


def test_undeploy_old_keeps_the_two_newest(fake: Fake, versions):
    registry = fake.registry()
    first = deploy(registry, versions[0], DeployConfig(endpoint="leads"))
    second = deploy(registry, versions[1], DeployConfig(endpoint="leads", traffic=50))
    third = deploy(registry, "lead-scoring@champion", DeployConfig(endpoint="leads", traffic=10, undeploy_old=True))

    assert third.version.ref == versions[2]
    assert third.undeployed == [first.deployed_model_id]
    undeploy = fake.api.calls("POST", ENDPOINTS + r"/\d+:undeployModel")[0].json
    assert undeploy["deployedModelId"] == first.deployed_model_id
    assert sum(undeploy["trafficSplit"].values()) == 100
    assert set(third.traffic_split) == {second.deployed_model_id, third.deployed_model_id}
    assert sum(third.traffic_split.values()) == 100 and third.traffic_split[third.deployed_model_id] >= 10


def test_a_model_without_dedicated_resources_is_refused_not_deployed_bare(monkeypatch, synth_run):
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    fake = Fake(models=VertexModels())  # the upload request's fields only: no supportedDeploymentResourcesTypes
    try:
        registry = fake.registry()
        registry.promote(str(synth_run().out))
        with pytest.raises(DeployError, match="cannot be deployed on dedicated resources"):
            deploy(registry, "lead-scoring@champion", DeployConfig(endpoint="leads"))
        assert fake.deploy_calls() == []
    finally:
        fake.api.stop()


@pytest.mark.parametrize(("config", "needle"), [
    (DeployConfig(endpoint="leads", traffic=101), "between 0 and 100"),
    (DeployConfig(endpoint="leads", min_replicas=3, max_replicas=2), "min"),
    (DeployConfig(endpoint="leads", logging_sampling_rate=0), "sampling rate"),
])
def test_bad_settings_are_refused_before_any_call(fake: Fake, config, needle):
    with pytest.raises(DeployError, match=needle):
        deploy(fake.registry(), "lead-scoring@champion", config)
    assert fake.api.requests == []


def test_an_artifact_directory_is_uploaded_then_deployed(fake: Fake, versions, synth_run):
    registry = fake.registry()
    run = synth_run(max_depth=4, n_estimators=15)
    result = deploy(registry, str(run.out), DeployConfig(endpoint="leads", traffic=10))
    upload = fake.api.calls("POST", r".*/models:upload")[-1].json
    assert "champion" not in upload["model"].get("versionAliases", [])  # a canary, not the champion
    assert result.version.version.endswith("-rc.1") and result.newly_deployed
    assert fake.deploy_calls()[-1]["deployedModel"]["model"] == result.version.resource_name
    assert registry.history("lead-scoring")[-1].action == "register"
    assert registry.resolve("lead-scoring@champion").version == versions[-1].split("@")[1]


def test_unknown_version_is_a_registry_error(fake: Fake, versions):
    with pytest.raises(RegistryError):
        deploy(fake.registry(), "lead-scoring@9.9.9", DeployConfig(endpoint="leads"))


def test_endpoint_predictions_and_exact_explanations_through_the_sdk(fake: Fake, synth_model: Path, cpr_server):
    """Endpoint.predict(..., parameters=...) at the wire; the fake forwards to the real CPR server and,
    like Vertex AI, returns only ``predictions``: explanations must travel inside them."""
    registry = fake.registry()
    registry.promote(str(synth_model))
    result = deploy(registry, "lead-scoring@champion", DeployConfig(endpoint="leads"))
    fake.endpoints.backend_url = cpr_server(synth_model).url
    endpoint = aiplatform.Endpoint(result.endpoint)
    leads = generate_leads(30, seed=3).drop_columns(["lead_id", "conversion_probability"]).to_pylist()
    expected = LeadScoringModel.load(synth_model).predict_instances(leads)

    scores = get_prediction(leads, endpoint, chunk=8)
    assert np.allclose(scores, expected, atol=1e-6)
    predicts = fake.api.calls("POST", ENDPOINTS + r"/\d+:predict")
    assert [len(r.json["instances"]) for r in predicts] == [8, 8, 8, 6]
    assert all("parameters" not in r.json for r in predicts)

    explanations = get_explanation(leads, result.endpoint)  # a resource name works too
    assert fake.api.calls("POST", ENDPOINTS + r"/\d+:predict")[-1].json["parameters"] == {"explain": True}
    assert np.allclose([e.score for e in explanations], expected, atol=1e-6)
    for explanation in explanations:
        assert abs(explanation.base_value + sum(explanation.attributions.values()) - explanation.score) <= 1e-5
        assert set(explanation.attributions) == set(EXAMPLE_LEAD)

    raw = endpoint.predict(instances=[EXAMPLE_LEAD], parameters={"explain": True})
    assert raw.deployed_model_id == result.deployed_model_id
    assert set(raw.predictions[0]) == {"score", "base_value", "attributions"}


def test_vertex_batch_job_for_a_registered_version(fake: Fake, versions):
    job = submit_batch_job(fake.registry(), "lead-scoring@champion", VertexBatchConfig(
        source="bq://test-project.crm.new_leads", destination="gs://bucket/scores", wait=True))
    (call,) = fake.api.calls("POST", BASE + "/batchPredictionJobs")
    body = call.json
    assert body["model"] == fake.registry().get("lead-scoring", "champion").resource_name
    assert body["inputConfig"] == {"instancesFormat": "bigquery",
                                   "bigquerySource": {"inputUri": "bq://test-project.crm.new_leads"}}
    assert body["outputConfig"] == {"predictionsFormat": "jsonl",
                                    "gcsDestination": {"outputUriPrefix": "gs://bucket/scores"}}
    assert body["dedicatedResources"] == {"machineSpec": {"machineType": "n1-standard-2"},
                                          "startingReplicaCount": 1, "maxReplicaCount": 2}
    assert body["labels"] == {"managed-by": "leadscore", "leadscore-model": "lead-scoring"}
    assert job.state.name == "JOB_STATE_SUCCEEDED"


def test_vertex_batch_job_jsonl_to_bigquery(fake: Fake, versions):
    submit_batch_job(fake.registry(), versions[0], VertexBatchConfig(
        source="gs://bucket/leads/new.jsonl", destination="bq://test-project.scores"))
    body = fake.api.calls("POST", BASE + "/batchPredictionJobs")[0].json
    assert body["inputConfig"] == {"instancesFormat": "jsonl", "gcsSource": {"uris": ["gs://bucket/leads/new.jsonl"]}}
    assert body["outputConfig"] == {"predictionsFormat": "bigquery",
                                    "bigqueryDestination": {"outputUri": "bq://test-project.scores"}}


@pytest.mark.parametrize(("source", "destination", "needle"), [
    ("gs://bucket/leads.csv", "gs://bucket/out", "reads gs://"),
    ("gs://bucket/leads.parquet", "gs://bucket/out", "reads gs://"),
    ("bq://project.table", "gs://bucket/out", "reads gs://"),
    ("gs://bucket/leads.jsonl", "/tmp/out", "writes to gs://"),
])
def test_unsupported_vertex_batch_io_is_refused_before_any_call(fake: Fake, source, destination, needle):
    with pytest.raises(VertexBatchError, match=needle):
        submit_batch_job(fake.registry(), "lead-scoring@champion", VertexBatchConfig(source, destination))
    assert fake.api.requests == []


def test_deploy_and_vertex_batch_cli(fake: Fake, versions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The commands as users run them: settings and Application Default Credentials (a service-account
    key) from the environment."""
    key = service_account_key(tmp_path / "key.json", PROJECT, f"{fake.api.url}/token")
    for name, value in {"GOOGLE_APPLICATION_CREDENTIALS": str(key), "STORAGE_EMULATOR_HOST": fake.api.url,
                        "GOOGLE_CLOUD_PROJECT": PROJECT, "GOOGLE_CLOUD_REGION": LOCATION,
                        "LEADSCORE_REGISTRY_URI": "gs://bucket/registry",
                        "LEADSCORE_VERTEX_ENDPOINT": fake.api.url}.items():
        monkeypatch.setenv(name, value)
    runner = CliRunner()
    first = runner.invoke(app, ["deploy", "--model", versions[1], "--endpoint", "leads", "--json"])
    assert first.exit_code == 0, first.output
    canary = runner.invoke(app, ["deploy", "--model", "lead-scoring@champion", "--endpoint", "leads",
                                 "--traffic", "20", "--machine-type", "n1-standard-4", "--max-replicas", "3"])
    assert canary.exit_code == 0, canary.output
    assert "20 %" in canary.stdout and "80 %" in canary.stdout and versions[2] in canary.stdout
    call = fake.deploy_calls()[-1]
    assert call["deployedModel"]["dedicatedResources"]["machineSpec"] == {"machineType": "n1-standard-4"}
    assert call["deployedModel"]["dedicatedResources"]["maxReplicaCount"] == 3
    assert json.loads(first.stdout)["traffic_split"] == {json.loads(first.stdout)["deployed_model_id"]: 100}

    batch = runner.invoke(app, ["batch-predict", "--vertex", "--model", "lead-scoring@champion", "--input",
                                "gs://bucket/leads.jsonl", "--output", "gs://bucket/scores", "--json"])
    assert batch.exit_code == 0, batch.output
    assert json.loads(batch.stdout)["job"].startswith(f"projects/{PROJECT}/locations/{LOCATION}/batchPredictionJobs/")

