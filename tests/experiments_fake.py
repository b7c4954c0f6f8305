"""A fake of the Vertex AI ML Metadata REST API, as Vertex AI Experiments uses it.

:class:`VertexMetadata` keeps metadata stores, contexts, executions and artifacts in memory and
installs the routes the aiplatform SDK calls for ``aiplatform.init(experiment=...)``,
``start_run``, ``log_params``, ``log_metrics`` and ``end_run`` on a
:class:`tests.vertex_fake.FakeApi`: create (with an ID; 409 when it exists), get (404 when it
does not), patch (metadata merged, as the service merges a struct) and the
``addContextChildren`` / ``addContextArtifactsAndExecutions`` links. An experiment is a context
with schema ``system.Experiment``; a run is a ``system.ExperimentRun`` context whose
metadata holds ``_params``, ``_metrics`` and ``_state``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from tests.vertex_fake import FakeApi, Reply, Request, error

_STORE = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/metadataStores"
_KINDS = "contexts|executions|artifacts"


def _now() -> str:
    return "2026-11-26T00:00:00.000000Z"


def _merge(target: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


@dataclass
class VertexMetadata:
    """In-memory ML Metadata resources.

    Attributes:
        resources: Resource name (``projects/p/locations/l/metadataStores/default/contexts/id``) → JSON.
        children: Context name → names of its child contexts, executions and artifacts.
    """

    resources: dict[str, dict[str, Any]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def install(self, api: FakeApi) -> VertexMetadata:
        """Adds the metadata routes to ``api``; returns self."""
        api.add_route("GET", _STORE + r"/(?P<store>[^/:]+)", self.get_store)
        api.add_route("POST", _STORE, self.create_store)
        item = _STORE + r"/(?P<store>[^/]+)/(?P<kind>" + _KINDS + r")"
        api.add_route("POST", item, self.create)
        api.add_route("GET", item + r"/(?P<id>[^/:]+)", self.get)
        api.add_route("PATCH", item + r"/(?P<id>[^/:]+)", self.patch)
        api.add_route("POST", item + r"/(?P<id>[^/:]+):(?P<verb>addContextChildren|addContextArtifactsAndExecutions)",
                      self.link)
        return self

    def runs(self, experiment: str) -> dict[str, dict[str, Any]]:
        """Run name → run context, for the runs of an experiment context ID."""
        parent = next(name for name, r in self.resources.items() if name.endswith(f"/contexts/{experiment}"))
        return {self.resources[c]["displayName"]: self.resources[c] for c in self.children.get(parent, [])
                if self.resources[c].get("schemaTitle") == "system.ExperimentRun"}

    @staticmethod
    def _store_name(match: re.Match[str], store: str = "default") -> str:
        return f"projects/{match['project']}/locations/{match['location']}/metadataStores/{store}"

    def get_store(self, request: Request, match: re.Match[str]) -> Reply | dict:
        name = self._store_name(match, match["store"])
        return self.resources.get(name) or error(404, f"{name} not found")

    def create_store(self, request: Request, match: re.Match[str]) -> dict:
        name = self._store_name(match, request.param("metadataStoreId") or "default")
        store = {"name": name, "createTime": _now(), "updateTime": _now(), **(request.json or {})}
        self.resources[name] = store
        return {"name": f"{name}/operations/{next(self._ids)}", "done": True,
                "response": {"@type": "type.googleapis.com/google.cloud.aiplatform.v1.MetadataStore", **store}}

    def create(self, request: Request, match: re.Match[str]) -> Reply | dict:
        ids = {"contexts": "contextId", "executions": "executionId", "artifacts": "artifactId"}
        resource_id = request.param(ids[match["kind"]]) or f"{match['kind'][:-1]}-{next(self._ids)}"
        name = f"{self._store_name(match, match['store'])}/{match['kind']}/{resource_id}"
        if name in self.resources:
            return error(409, f"{name} already exists")
        resource = {**(request.json or {}), "name": name, "createTime": _now(), "updateTime": _now(), "etag": "1"}
        self.resources[name] = resource
        return resource

    def get(self, request: Request, match: re.Match[str]) -> Reply | dict:
        name = f"{self._store_name(match, match['store'])}/{match['kind']}/{match['id']}"
        return self.resources.get(name) or error(404, f"{name} not found")

    def patch(self, request: Request, match: re.Match[str]) -> Reply | dict:
        name = f"{self._store_name(match, match['store'])}/{match['kind']}/{match['id']}"
        if name not in self.resources:
            return error(404, f"{name} not found")
        _merge(self.resources[name], {k: v for k, v in (request.json or {}).items() if k != "name"})
        self.resources[name]["updateTime"] = _now()
        return self.resources[name]

    def link(self, request: Request, match: re.Match[str]) -> dict:
        name = f"{self._store_name(match, match['store'])}/{match['kind']}/{match['id']}"
        body = request.json or {}
        for key in ("childContexts", "artifacts", "executions"):
            self.children.setdefault(name, []).extend(body.get(key, []))
        return {}
