"""The artifact contract: checksummed, verified on load, downloaded with an exact prefix."""

from __future__ import annotations

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlparse

import numpy as np
import pytest

from predictor.artifacts import (
    MANIFEST_FILE,
    METADATA_FILE,
    MODEL_FILE,
    ArtifactError,
    gcs_relative_name,
    open_artifacts,
    verify,
)
from predictor.model import LeadScoringModel
from training.synth import EXAMPLE_LEAD


def test_training_output_is_complete_and_pickle_free(synth_model: Path):
    manifest = verify(synth_model)
    listed = set(manifest["files"])
    on_disk = {p.name for p in synth_model.iterdir()} - {MANIFEST_FILE}
    assert listed == on_disk
    assert {"model.ubj", "transform.json", "metrics.json", "profile.json", "metadata.json"} <= listed
    assert {"xgboost", "scikit-learn", "numpy"} <= set(manifest["versions"])
    for path in synth_model.iterdir():
        assert not path.read_bytes().startswith(b"\x80"), f"{path.name} looks like a pickle"
    profile = json.loads((synth_model / "profile.json").read_text())
    assert profile["features"]["industry"]["type"] == "categorical"
    assert len(profile["features"]["pages_visited"]["counts"]) == len(profile["features"]["pages_visited"]["edges"]) + 1


@pytest.fixture
def model_copy(synth_model: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(synth_model, target)
    return target


def test_altered_file_is_refused(model_copy: Path):
    metadata = model_copy / METADATA_FILE
    metadata.write_text(metadata.read_text().replace('"lead-scoring"', '"evil"'))
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        LeadScoringModel.load(model_copy)


def test_missing_file_is_refused(model_copy: Path):
    (model_copy / MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match="model.ubj is listed in the manifest but missing"):
        LeadScoringModel.load(model_copy)


def test_directory_without_manifest_is_refused(model_copy: Path):
    (model_copy / MANIFEST_FILE).unlink()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        open_artifacts(model_copy)


def test_local_directory_is_read_in_place(synth_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    artifacts = open_artifacts(synth_model)
    assert artifacts.path == synth_model and not artifacts.temporary
    assert list(tmp_path.iterdir()) == []  # nothing copied into the working directory


@pytest.mark.parametrize(
    ("blob", "expected"),
    [
        ("models/1/model.ubj", "model.ubj"),
        ("models/1/sub/x.json", "sub/x.json"),
        ("models/10/model.ubj", None),
        ("models/1", None),
        ("models/1/", None),
        ("other/models/1/model.ubj", None),
    ],
)
def test_gcs_prefix_matches_whole_segments(blob, expected):
    assert gcs_relative_name("models/1", blob) == expected
    assert gcs_relative_name("models/1/", blob) == expected


class _FakeGcs(BaseHTTPRequestHandler):
    """The two calls of the GCS JSON API that a download makes: list objects and get media."""

    objects: dict[str, bytes] = {}
    requests: list[str] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server naming)
        url = urlparse(self.path)
        self.requests.append(self.path)
        query = parse_qs(url.query)
        if url.path == "/storage/v1/b/bucket/o":
            prefix = query.get("prefix", [""])[0]
            items = [
                {"name": name, "bucket": "bucket", "size": str(len(data)), "generation": "1"}
                for name, data in sorted(self.objects.items())
                if name.startswith(prefix)
            ]
            body = json.dumps({"kind": "storage#objects", "items": items}).encode()
            self._send(200, body, "application/json")
        elif url.path.startswith("/download/storage/v1/b/bucket/o/"):
            name = unquote(url.path[len("/download/storage/v1/b/bucket/o/"):])
            self._send(200, self.objects[name], "application/octet-stream")
        elif url.path.startswith("/storage/v1/b/bucket/o/"):
            name = unquote(url.path[len("/storage/v1/b/bucket/o/"):])
            data = self.objects[name]
            body = json.dumps({"name": name, "bucket": "bucket", "size": str(len(data)), "generation": "1"})
            self._send(200, body.encode(), "application/json")
        else:
            self._send(404, b"{}", "application/json")

    def _send(self, status: int, body: bytes, content_type: str):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def fake_gcs(synth_model: Path):
    objects = {f"models/1/{p.name}": p.read_bytes() for p in synth_model.iterdir()}
    # A sibling version whose name shares the string prefix: must never be pulled.
    objects["models/10/model.ubj"] = b"not a model"
    _FakeGcs.objects, _FakeGcs.requests = objects, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGcs)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(
        project="test",
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{server.server_port}"),
    )
    yield client
    server.shutdown()


def test_gcs_artifacts_download_exact_prefix_into_private_dir(fake_gcs, synth_model: Path, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = LeadScoringModel.load("gs://bucket/models/1", gcs_client=fake_gcs)
    local = LeadScoringModel.load(synth_model)
    assert np.array_equal(model.predict_instances([EXAMPLE_LEAD]), local.predict_instances([EXAMPLE_LEAD]))
    downloads = [r for r in _FakeGcs.requests if r.startswith("/download/")]
    assert downloads and all(quote("models/1/", safe="") in r or "models/1/" in r for r in downloads)
    assert not any("models%2F10" in r or "models/10" in r for r in downloads)
    assert list(tmp_path.iterdir()) == []  # nothing left in the working directory


def test_gcs_prefix_without_files_is_refused(fake_gcs):
    with pytest.raises(ArtifactError, match="no files below this prefix"):
        LeadScoringModel.load("gs://bucket/models/2", gcs_client=fake_gcs)
