"""A small routing HTTP fake of Google Cloud REST APIs, for testing the real SDKs at the wire.

:class:`FakeApi` is an ``http.server`` on 127.0.0.1 in a thread with a route table of
``(method, path regex) → handler`` that records every request (method, path, query, JSON body)
for assertions. The API fakes install their routes on it:

- :class:`VertexModels`: the Vertex AI Model Registry calls the aiplatform SDK makes
  (``models:upload`` as a finished long-running operation, model get, list with a label filter,
  ``:listVersions``, ``:mergeVersionAliases``), with the registry's alias semantics: an alias is
  unique within a model, and adding it to a version moves it there.
- :class:`GcsObjects`: the JSON API calls of google-cloud-storage for small objects (list,
  metadata, media download, multipart upload with ``ifGenerationMatch``).

Typical use::

    api = FakeApi().start()
    models, gcs = VertexModels().install(api), GcsObjects().install(api)
    aiplatform.init(project="p", location="us-central1", credentials=AnonymousCredentials(),
                    api_transport="rest", api_endpoint=api.url)
    ...
    upload = api.calls("POST", r".*/models:upload")[0].json
    api.stop()

To fake another endpoint, add a route: ``api.add_route("POST", r"/v1/.*/endpoints/(?P<id>\\w+):deploy", fn)``
where ``fn(request, match)`` returns a :class:`Reply`, or a dict/list (sent as JSON with 200).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import google_crc32c


@dataclass
class Request:
    """One request the fake received.

    Attributes:
        method: HTTP method.
        path: URL path, percent-decoded.
        query: Query parameters (each a list of values).
        headers: Request headers, names in lower case.
        body: Raw body.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON (None for an empty or non-JSON body)."""
        try:
            return json.loads(self.body) if self.body else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            return None

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        return self.query.get(name, [default])[0]


@dataclass
class Reply:
    """A handler's answer: a status and a JSON-able payload or raw bytes."""

    status: int = 200
    payload: Any = None
    content_type: str = "application/json"


Handler = Callable[[Request, "re.Match[str]"], "Reply | dict | list"]


def error(status: int, message: str) -> Reply:
    """A Google-style JSON error reply."""
    return Reply(status, {"error": {"code": status, "message": message}})


class FakeApi:
    """A routing HTTP server on 127.0.0.1 that records what it is sent.

    Attributes:
        requests: Every request received, in order (unrouted ones too; they get a 404).
        errors: Tracebacks of handlers that raised (the client got a 400); assert it stays empty.
    """

    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.requests: list[Request] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        """Routes ``method`` requests whose whole path matches ``pattern`` to ``handler``."""
        self.routes.append((method.upper(), re.compile(pattern), handler))

    def calls(self, method: str | None = None, pattern: str | None = None) -> list[Request]:
        """The recorded requests with this method and a path fully matching ``pattern``."""
        return [
            r for r in self.requests
            if (method is None or r.method == method.upper()) and (pattern is None or re.fullmatch(pattern, r.path))
        ]

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> FakeApi:
        """Starts serving in a daemon thread."""
        api = self

        class _Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _dispatch(self) -> None:
                url = urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                headers = {k.lower(): v for k, v in self.headers.items()}
                request = Request(self.command, unquote(url.path), parse_qs(url.query), headers,
                                  self.rfile.read(length) if length else b"")
                with api._lock:  # one request at a time: handlers mutate shared state
                    api.requests.append(request)
                    try:
                        reply = api._handle(request)
                    except Exception as exc:  # noqa: BLE001 (a fake's bug must reach the test, not hang it)
                        api.errors.append(f"{request.method} {request.path}: {traceback.format_exc()}")
                        # 400, not 500: the SDKs retry 5xx for minutes.
                        reply = error(400, f"fake handler failed: {exc!r}")
                body = reply.payload if isinstance(reply.payload, bytes) else json.dumps(reply.payload).encode()
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _dispatch  # noqa: N815 (http.server naming)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stops the server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeApi:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _handle(self, request: Request) -> Reply:
        for method, pattern, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                reply = handler(request, match)
                return reply if isinstance(reply, Reply) else Reply(200, reply)
        return error(404, f"no fake route for {request.method} {request.path}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


# Vertex AI Model Registry --------------------------------------------------------------------

_LOCATION = r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
_MODEL = _LOCATION + r"/models/(?P<model>[^/@:]+)(?:@(?P<version>[^/:]+))?"
_LABEL_EQUALS = re.compile(r'labels\.(?P<key>[\w-]+)\s*=\s*"(?P<value>[^"]*)"')
_LABEL_EXISTS = re.compile(r"labels\.(?P<key>[\w-]+):\*")


def label_filter(expression: str | None) -> Callable[[dict[str, Any]], bool]:
    """A predicate for the filter subset we use: ``labels.k="v"`` and ``labels.k:*`` joined by AND.

    Raises:
        ValueError: Any other syntax, so a test notices a filter the fake does not understand.
    """
    terms: list[Callable[[dict[str, Any]], bool]] = []
    for term in filter(None, (t.strip() for t in re.split(r"\s+AND\s+", expression or ""))):
        if m := _LABEL_EQUALS.fullmatch(term):
            terms.append(lambda model, k=m["key"], v=m["value"]: model.get("labels", {}).get(k) == v)
        elif m := _LABEL_EXISTS.fullmatch(term):
            terms.append(lambda model, k=m["key"]: k in model.get("labels", {}))
        else:
            raise ValueError(f"filter term the fake does not support: {term!r}")
    return lambda model: all(term(model) for term in terms)


@dataclass
class VertexModels:
    """In-memory Vertex AI models: each model ID holds versions ``"1"``, ``"2"``, ...

    Attributes:
        models: Model ID → list of version resources (REST JSON, camelCase), oldest first.
    """

    models: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1001))

    def install(self, api: FakeApi) -> VertexModels:
        """Adds the model service routes to ``api``; returns self."""
        api.add_route("POST", _LOCATION + r"/models:upload", self.upload)
        api.add_route("GET", _LOCATION + r"/models", self.list_models)
        api.add_route("GET", _MODEL + r":listVersions", self.list_versions)
        api.add_route("POST", _MODEL + r":mergeVersionAliases", self.merge_aliases)
        api.add_route("GET", _MODEL, self.get)
        return self

    def version(self, model_id: str, selector: str | None) -> dict[str, Any] | None:
        """A version by ID or alias (the ``default`` version when no selector is given)."""
        selector = selector or "default"
        for version in self.models.get(model_id, []):
            if version["versionId"] == selector or selector in version["versionAliases"]:
                return version
        return None

    def upload(self, request: Request, match: re.Match[str]) -> Reply:
        body = request.json or {}
        model = dict(body["model"])
        parent = body.get("parentModel")
        if parent:
            model_id = parent.rsplit("/", 1)[-1]
            if model_id not in self.models:
                return error(404, f"parent model {parent} not found")
        else:
            model_id = str(next(self._ids))
            self.models[model_id] = []
        versions = self.models[model_id]
        aliases = list(model.get("versionAliases", []))
        if not versions and "default" not in aliases:
            aliases.append("default")  # the first version of a model always gets the default alias
        self._take_aliases(model_id, aliases)
        now = _now()
        model.update({
            "name": f"projects/{match['project']}/locations/{match['location']}/models/{model_id}",
            "versionId": str(len(versions) + 1),
            "versionAliases": aliases,
            "versionCreateTime": now,
            "versionUpdateTime": now,
            "createTime": versions[0]["createTime"] if versions else now,
            "updateTime": now,
        })
        versions.append(model)
        return Reply(200, {
            "name": f"{model['name']}/operations/{len(self.models)}{len(versions)}",
            "done": True,
            "response": {
                "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
                "model": model["name"],
                "modelVersionId": model["versionId"],
            },
        })

    def get(self, request: Request, match: re.Match[str]) -> Reply | dict:
        version = self.version(match["model"], match["version"])
        if version is None:
            return error(404, f"model {match['model']}@{match['version']} not found")
        return version

    def list_models(self, request: Request, match: re.Match[str]) -> Reply | dict:
        try:
            keep = label_filter(request.param("filter"))
        except ValueError as exc:
            return error(400, str(exc))
        defaults = (self.version(model_id, None) for model_id in self.models)
        return {"models": [v for v in defaults if v is not None and keep(v)]}

    def list_versions(self, request: Request, match: re.Match[str]) -> Reply | dict:
        if match["model"] not in self.models:
            return error(404, f"model {match['model']} not found")
        try:
            keep = label_filter(request.param("filter"))
        except ValueError as exc:
            return error(400, str(exc))
        return {"models": [v for v in self.models[match["model"]] if keep(v)]}

    def merge_aliases(self, request: Request, match: re.Match[str]) -> Reply | dict:
        version = self.version(match["model"], match["version"])
        if version is None:
            return error(404, f"model {match['model']}@{match['version']} not found")
        changes = (request.json or {}).get("versionAliases", [])
        removed = {c[1:] for c in changes if c.startswith("-")}
        if "default" in removed:
            return error(400, "the default alias cannot be removed; move it to another version")
        added = [c for c in changes if not c.startswith("-")]
        self._take_aliases(match["model"], added)
        version["versionAliases"] = [a for a in version["versionAliases"] if a not in removed]
        version["versionAliases"] += [a for a in added if a not in version["versionAliases"]]
        version["versionUpdateTime"] = _now()
        return version

    def _take_aliases(self, model_id: str, aliases: list[str]) -> None:
        """An alias is unique within a model: adding it elsewhere removes it from its holder."""
        for version in self.models[model_id]:
            version["versionAliases"] = [a for a in version["versionAliases"] if a not in aliases]


# Cloud Storage --------------------------------------------------------------------------------

_BUCKET = r"/storage/v1/b/(?P<bucket>[^/]+)"


def _crc32c(data: bytes) -> str:
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


@dataclass
class GcsObjects:
    """In-memory Cloud Storage objects.

    Attributes:
        objects: ``(bucket, name)`` → content.
    """

    objects: dict[tuple[str, str], bytes] = field(default_factory=dict)
    generations: dict[tuple[str, str], int] = field(default_factory=dict)

    def install(self, api: FakeApi) -> GcsObjects:
        """Adds the storage routes to ``api``; returns self."""
        api.add_route("GET", _BUCKET, lambda request, match: {"kind": "storage#bucket", "name": match["bucket"]})
        api.add_route("GET", _BUCKET + r"/o", self.list)
        api.add_route("GET", _BUCKET + r"/o/(?P<name>.+)", self.metadata)
        api.add_route("GET", r"/download" + _BUCKET + r"/o/(?P<name>.+)", self.media)
        api.add_route("POST", r"/upload" + _BUCKET + r"/o", self.upload)
        return self

    def resource(self, bucket: str, name: str) -> dict[str, Any]:
        """The object resource JSON of a stored object."""
        data = self.objects[(bucket, name)]
        return {
            "kind": "storage#object", "bucket": bucket, "name": name, "size": str(len(data)),
            "generation": str(self.generations[(bucket, name)]), "crc32c": _crc32c(data),
            "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
        }

    def list(self, request: Request, match: re.Match[str]) -> dict:
        prefix = request.param("prefix", "")
        names = sorted(n for b, n in self.objects if b == match["bucket"] and n.startswith(prefix))
        return {"kind": "storage#objects", "items": [self.resource(match["bucket"], n) for n in names]}

    def metadata(self, request: Request, match: re.Match[str]) -> Reply | dict:
        if (match["bucket"], match["name"]) not in self.objects:
            return error(404, f"no such object: {match['bucket']}/{match['name']}")
        return self.resource(match["bucket"], match["name"])

    def media(self, request: Request, match: re.Match[str]) -> Reply:
        key = (match["bucket"], match["name"])
        if key not in self.objects:
            return error(404, f"no such object: {match['bucket']}/{match['name']}")
        return Reply(200, self.objects[key], "application/octet-stream")

    def upload(self, request: Request, match: re.Match[str]) -> Reply | dict:
        if request.param("uploadType") != "multipart":
            return error(400, f"the fake supports multipart uploads only, not {request.param('uploadType')}")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body
        )
        metadata_part, media_part = list(message.iter_parts())
        metadata = json.loads(metadata_part.get_payload(decode=True))
        data = media_part.get_payload(decode=True)
        key = (match["bucket"], metadata.get("name") or request.param("name"))
        if request.param("ifGenerationMatch") == "0" and key in self.objects:
            return error(412, f"{key[1]} already exists (ifGenerationMatch=0)")
        if "crc32c" in metadata and metadata["crc32c"] != _crc32c(data):
            return error(400, "crc32c of the uploaded data does not match")
        self.objects[key] = data
        self.generations[key] = self.generations.get(key, 0) + 1
        return self.resource(*key)


def service_account_key(path: Path, project: str, token_uri: str) -> Path:
    """Writes a throwaway service-account key for Application Default Credentials
    (``GOOGLE_APPLICATION_CREDENTIALS``): the SDKs sign their own JWTs with it, so calls to a fake
    carry real ``Authorization`` headers and nothing asks a token server."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_text(json.dumps({
        "type": "service_account", "project_id": project, "private_key_id": "1", "private_key": key.decode(),
        "client_email": f"leadscore@{project}.iam.gserviceaccount.com", "client_id": "1", "token_uri": token_uri}))
    return path
