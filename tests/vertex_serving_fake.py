"""Fakes of the Vertex AI serving APIs for the routing fake in ``tests/vertex_fake.py``.

- :class:`CprModels`: the model registry fake, with the one server-side field an uploaded
  custom-container model has that the upload request does not carry:
  ``supportedDeploymentResourcesTypes`` (without it the SDK silently deploys without a machine spec).
- :class:`VertexEndpoints`: endpoints (create as a finished long-running operation, get, list by
  display name, update of the traffic split), ``:deployModel`` / ``:undeployModel`` with
  Vertex AI's traffic-split rules (the new model is ``"0"`` in the request's split; the split
  must sum to 100), and ``:predict``, which forwards the request body to a real model server and
  returns only what Vertex AI returns (``predictions`` and the deployed model's IDs).
- :class:`BatchPredictionJobs`: create, and get (a job succeeds on its first read).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.vertex_fake import FakeApi, Reply, Request, VertexModels, _now, error

_LOCATION = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_ENDPOINT = _LOCATION + r"/endpoints/(?P<endpoint>\d+)"
_DISPLAY_NAME = re.compile(r'display_name="(?P<name>[^"]*)"')


class CprModels(VertexModels):
    """Uploaded models as Vertex AI describes a custom-container model: deployable on dedicated resources."""

    def upload(self, request: Request, match: re.Match[str]) -> Reply:
        reply = super().upload(request, match)
        for versions in self.models.values():
            for version in versions:
                version.setdefault("supportedDeploymentResourcesTypes", ["DEDICATED_RESOURCES"])
        return reply


def _operation(resource_name: str, type_name: str, response: dict[str, Any]) -> dict[str, Any]:
    return {"name": f"{resource_name}/operations/{next(_OPERATION_IDS)}", "done": True,
            "response": {"@type": f"type.googleapis.com/google.cloud.aiplatform.v1.{type_name}", **response}}


_OPERATION_IDS = itertools.count(1)


@dataclass
class VertexEndpoints:
    """In-memory endpoints.

    Attributes:
        backend_url: Base URL of a running model server that ``:predict`` forwards to.
        endpoints: Endpoint ID → endpoint resource (REST JSON).
    """

    backend_url: str | None = None
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(5001))
    _deployed_ids: itertools.count = field(default_factory=lambda: itertools.count(7001))

    def install(self, api: FakeApi) -> VertexEndpoints:
        """Adds the endpoint routes to ``api``; returns self."""
        api.add_route("POST", _LOCATION + r"/endpoints", self.create)
        api.add_route("GET", _LOCATION + r"/endpoints", self.list)
        api.add_route("GET", _ENDPOINT, self.get)
        api.add_route("PATCH", _ENDPOINT, self.update)
        api.add_route("POST", _ENDPOINT + r":deployModel", self.deploy)
        api.add_route("POST", _ENDPOINT + r":undeployModel", self.undeploy)
        api.add_route("POST", _ENDPOINT + r":predict", self.predict)
        return self

    def create(self, request: Request, match: re.Match[str]) -> dict:
        endpoint_id = str(next(self._ids))
        now = _now()
        endpoint = {**(request.json or {}), "deployedModels": [], "trafficSplit": {}, "createTime": now,
                    "updateTime": now,
                    "name": f"projects/{match['project']}/locations/{match['location']}/endpoints/{endpoint_id}"}
        logging = endpoint.get("predictRequestResponseLoggingConfig")
        if logging and logging.get("enabled") and not logging.get("bigqueryDestination", {}).get("outputUri"):
            # Vertex AI names the table itself when none is given.
            table = f"bq://{match['project']}.logging_{endpoint['displayName']}_{endpoint_id}.request_response_logging"
            logging["bigqueryDestination"] = {"outputUri": table}
        self.endpoints[endpoint_id] = endpoint
        return _operation(endpoint["name"], "Endpoint", endpoint)

    def list(self, request: Request, match: re.Match[str]) -> dict:
        wanted = _DISPLAY_NAME.fullmatch((request.param("filter") or "").strip())
        found = [e for e in self.endpoints.values() if wanted is None or e.get("displayName") == wanted["name"]]
        return {"endpoints": found}

    def get(self, request: Request, match: re.Match[str]) -> Reply | dict:
        endpoint = self.endpoints.get(match["endpoint"])
        return endpoint if endpoint is not None else error(404, f"endpoint {match['endpoint']} not found")

    def update(self, request: Request, match: re.Match[str]) -> Reply | dict:
        endpoint = self.endpoints.get(match["endpoint"])
        if endpoint is None:
            return error(404, f"endpoint {match['endpoint']} not found")
        body = request.json or {}
        mask = (request.param("updateMask") or request.param("update_mask") or "").split(",")
        if "traffic_split" in mask or "trafficSplit" in mask:
            problem = self._check_split(endpoint, body.get("trafficSplit", {}))
            if problem:
                return error(400, problem)
            endpoint["trafficSplit"] = {k: int(v) for k, v in body.get("trafficSplit", {}).items()}
        endpoint["updateTime"] = _now()
        return endpoint

    def deploy(self, request: Request, match: re.Match[str]) -> Reply | dict:
        endpoint = self.endpoints.get(match["endpoint"])
        if endpoint is None:
            return error(404, f"endpoint {match['endpoint']} not found")
        body = request.json or {}
        deployed = dict(body["deployedModel"])
        deployed_id = str(next(self._deployed_ids))
        model, _, version = deployed["model"].partition("@")
        deployed.update({"id": deployed_id, "model": model, "modelVersionId": version or "1", "createTime": _now()})
        split = {(deployed_id if k == "0" else k): int(v) for k, v in body.get("trafficSplit", {}).items()}
        problem = self._check_split(endpoint, split, adding=deployed_id)
        if problem:
            return error(400, problem)
        endpoint["deployedModels"].append(deployed)
        endpoint["trafficSplit"] = split
        return _operation(endpoint["name"], "DeployModelResponse", {"deployedModel": deployed})

    def undeploy(self, request: Request, match: re.Match[str]) -> Reply | dict:
        endpoint = self.endpoints.get(match["endpoint"])
        if endpoint is None:
            return error(404, f"endpoint {match['endpoint']} not found")
        body = request.json or {}
        deployed_id = body["deployedModelId"]
        remaining = [m for m in endpoint["deployedModels"] if m["id"] != deployed_id]
        if len(remaining) == len(endpoint["deployedModels"]):
            return error(404, f"deployed model {deployed_id} not found")
        split = {k: int(v) for k, v in body.get("trafficSplit", {}).items()} if "trafficSplit" in body else {
            k: v for k, v in endpoint["trafficSplit"].items() if k != deployed_id}
        if remaining and sum(split.values()) != 100:
            return error(400, f"traffic split {split} after undeploying {deployed_id} does not sum to 100")
        endpoint["deployedModels"] = remaining
        endpoint["trafficSplit"] = split
        return _operation(endpoint["name"], "UndeployModelResponse", {})

    def predict(self, request: Request, match: re.Match[str]) -> Reply | dict:
        endpoint = self.endpoints.get(match["endpoint"])
        if endpoint is None or not endpoint["deployedModels"]:
            return error(400, f"endpoint {match['endpoint']} has no deployed model")
        serving = max(endpoint["deployedModels"], key=lambda m: endpoint["trafficSplit"].get(m["id"], 0))
        response = httpx.post(f"{self.backend_url}/predict", content=request.body,
                              headers={"Content-Type": "application/json"}, timeout=60)
        if response.status_code != 200:
            return error(response.status_code, response.json().get("detail", response.text))
        # Vertex AI passes only the predictions through, plus which deployed model answered.
        return {"predictions": response.json()["predictions"], "deployedModelId": serving["id"],
                "model": serving["model"], "modelVersionId": serving["modelVersionId"]}

    def _check_split(self, endpoint: dict[str, Any], split: dict[str, int], adding: str | None = None) -> str | None:
        known = {m["id"] for m in endpoint["deployedModels"]} | ({adding} if adding else set())
        unknown = set(split) - known
        if unknown:
            return f"traffic split names unknown deployed models {sorted(unknown)}"
        if split and sum(split.values()) != 100:
            return f"traffic split {split} does not sum to 100"
        return None


@dataclass
class BatchPredictionJobs:
    """In-memory batch prediction jobs; a job is ``JOB_STATE_SUCCEEDED`` once it has been read.

    Attributes:
        jobs: Job ID → job resource (REST JSON).
    """

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(9001))

    def install(self, api: FakeApi) -> BatchPredictionJobs:
        """Adds the batch prediction job routes to ``api``; returns self."""
        api.add_route("POST", _LOCATION + r"/batchPredictionJobs", self.create)
        api.add_route("GET", _LOCATION + r"/batchPredictionJobs/(?P<job>\d+)", self.get)
        return self

    def create(self, request: Request, match: re.Match[str]) -> dict:
        job_id = str(next(self._ids))
        now = _now()
        job = {**(request.json or {}), "state": "JOB_STATE_PENDING", "createTime": now, "updateTime": now,
               "name": f"projects/{match['project']}/locations/{match['location']}/batchPredictionJobs/{job_id}"}
        self.jobs[job_id] = job
        return job

    def get(self, request: Request, match: re.Match[str]) -> Reply | dict:
        job = self.jobs.get(match["job"])
        if job is None:
            return error(404, f"batch prediction job {match['job']} not found")
        job["state"] = "JOB_STATE_SUCCEEDED"
        return job
