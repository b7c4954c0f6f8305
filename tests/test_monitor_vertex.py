"""The Vertex AI monitoring job, created by the real SDK against a local fake of the REST API."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import aiplatform

from tests.vertex_fake import FakeApi, Reply, Request, service_account_key
from training.monitor.drift import DriftThresholds
from training.monitor.vertex_job import MonitoringJobSpec, create_monitoring_job

PROJECT, LOCATION, ENDPOINT_ID = "p", "us-central1", "1234567890"
ENDPOINT = f"projects/{PROJECT}/locations/{LOCATION}/endpoints/{ENDPOINT_ID}"
FEATURES = ["company_size", "industry", "pages_visited"]


class VertexMonitoring:
    """The endpoint read and the monitoring-job create the SDK sends."""

    def install(self, api: FakeApi) -> VertexMonitoring:
        location = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
        api.add_route("GET", location + r"/endpoints/(?P<id>\d+)", self.endpoint)
        api.add_route("POST", location + r"/modelDeploymentMonitoringJobs", self.create)
        return self

    def endpoint(self, request: Request, match: re.Match[str]) -> dict:
        return {
            "name": request.path.removeprefix("/v1/"),
            "displayName": "leadscore",
            "deployedModels": [{"id": "111", "model": f"projects/{PROJECT}/locations/{LOCATION}/models/9",
                                "displayName": "lead-scoring"}],
        }

    def create(self, request: Request, match: re.Match[str]) -> Reply:
        job = dict(request.json)
        job.update(name=f"{request.path.removeprefix('/v1/')}/42", state="JOB_STATE_PENDING")
        return Reply(200, job)


@pytest.fixture
def vertex(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    from google.cloud.aiplatform import initializer

    # aiplatform.init settings are process-global: a fresh configuration for each test.
    config = initializer._Config()
    monkeypatch.setattr(initializer, "global_config", config)
    monkeypatch.setattr(aiplatform, "init", config.init)
    monkeypatch.setenv("NO_GCE_CHECK", "true")  # never probe the metadata server
    api = FakeApi().start()
    VertexMonitoring().install(api)
    yield api
    api.stop()
    assert api.errors == []


def init_anonymous(api: FakeApi) -> None:
    aiplatform.init(project=PROJECT, location=LOCATION, credentials=AnonymousCredentials(), api_transport="rest",
                    api_endpoint=api.url)


def test_create_job_sends_thresholds_sampling_schedule_and_alerts(vertex: FakeApi):
    spec = MonitoringJobSpec(
        endpoint=ENDPOINT, features=FEATURES,
        thresholds=DriftThresholds(default=0.3, per_feature={"industry": 0.05}),
        emails=["ml-team@example.com"], notification_channels=["projects/p/notificationChannels/7"],
    )
    init_anonymous(vertex)
    job = create_monitoring_job(spec)
    assert job == {"name": f"projects/{PROJECT}/locations/{LOCATION}/modelDeploymentMonitoringJobs/42",
                   "display_name": f"leadscore-monitoring-{ENDPOINT_ID}", "state": "JOB_STATE_PENDING"}
    sent = vertex.calls("POST", r".*/modelDeploymentMonitoringJobs")
    assert len(sent) == 1
    body = sent[0].json
    assert body["endpoint"] == ENDPOINT
    [objective] = body["modelDeploymentMonitoringObjectiveConfigs"]
    assert objective["deployedModelId"] == "111"  # the SDK applies it to every deployed model
    thresholds = objective["objectiveConfig"]["predictionDriftDetectionConfig"]["driftThresholds"]
    assert thresholds == {"company_size": {"value": 0.3}, "industry": {"value": 0.05}, "pages_visited": {"value": 0.3}}
    assert body["loggingSamplingStrategy"] == {"randomSampleConfig": {"sampleRate": 0.8}}
    assert body["modelDeploymentMonitoringScheduleConfig"]["monitorInterval"] == "86400s"  # daily
    alerts = body["modelMonitoringAlertConfig"]
    assert alerts["emailAlertConfig"]["userEmails"] == ["ml-team@example.com"]
    assert alerts["enableLogging"] is True  # the Terraform alert policy reads these log entries
    assert alerts["notificationChannels"] == ["projects/p/notificationChannels/7"]


def test_interval_and_sample_rate_are_passed_through(vertex: FakeApi):
    init_anonymous(vertex)
    create_monitoring_job(MonitoringJobSpec(endpoint=ENDPOINT_ID, features=FEATURES, sample_rate=0.25,
                                            interval_hours=6, display_name="hourly-ish"))
    body = vertex.calls("POST", r".*/modelDeploymentMonitoringJobs")[0].json
    assert body["displayName"] == "hourly-ish"
    assert body["loggingSamplingStrategy"]["randomSampleConfig"]["sampleRate"] == 0.25
    assert body["modelDeploymentMonitoringScheduleConfig"]["monitorInterval"] == "21600s"
    assert body["endpoint"] == ENDPOINT  # an endpoint ID is resolved in the init project and region


def test_cli_with_application_default_credentials(vertex: FakeApi, synth_model: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch):
    """The path users take: ADC from a service-account key, project and region from the environment."""
    from typer.testing import CliRunner

    from training.cli import app

    key = service_account_key(tmp_path / "key.json", PROJECT, f"{vertex.url}/token")
    for name, value in {"GOOGLE_APPLICATION_CREDENTIALS": str(key), "GOOGLE_CLOUD_PROJECT": PROJECT,
                        "GOOGLE_CLOUD_REGION": LOCATION, "LEADSCORE_VERTEX_ENDPOINT": vertex.url}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, [
        "monitor", "create-job", "--endpoint", ENDPOINT_ID, "--model", str(synth_model), "--email", "a@example.com",
        "--threshold", "0.05", "--feature-threshold", "industry=0.2", "--interval-hours", "12", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["state"] == "JOB_STATE_PENDING"
    [sent] = vertex.calls("POST", r".*/modelDeploymentMonitoringJobs")
    assert sent.headers["authorization"].startswith("Bearer ")
    body = sent.json
    thresholds = body["modelDeploymentMonitoringObjectiveConfigs"][0]["objectiveConfig"][
        "predictionDriftDetectionConfig"]["driftThresholds"]
    features = ["company_size", "pages_visited", "time_on_site", "prior_contacts", "industry", "product_interest",
                "campaign_source"]  # the model's input schema
    assert thresholds == {f: {"value": 0.2 if f == "industry" else 0.05} for f in features}
    assert body["modelDeploymentMonitoringScheduleConfig"]["monitorInterval"] == "43200s"
    assert body["modelMonitoringAlertConfig"]["emailAlertConfig"]["userEmails"] == ["a@example.com"]
    assert body["endpoint"] == ENDPOINT


def test_cli_refuses_a_threshold_for_an_unknown_feature(synth_model: Path):
    from typer.testing import CliRunner

    from training.cli import app
    from training.errors import LeadscoreError

    result = CliRunner().invoke(app, ["monitor", "create-job", "--endpoint", ENDPOINT_ID, "--model", str(synth_model),
                                      "--feature-threshold", "colour=0.1"])
    assert isinstance(result.exception, LeadscoreError) and "unknown feature(s): colour" in str(result.exception)
