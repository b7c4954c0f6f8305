"""The container smoke-test tooling: the runtime script's mirror lookup and refusals, and the
docker-py wrapper that keeps containers off the bridge and on 127.0.0.1 (checked at the wire,
against a local HTTP fake of the Docker Engine API)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "scripts" / "container-runtime.sh"


def _load_smoke_module():
    spec = importlib.util.spec_from_file_location("smoke_image", ROOT / "scripts" / "smoke_image.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["smoke_image"] = module
    spec.loader.exec_module(module)
    return module


smoke = _load_smoke_module()


def runtime(*args: str, env: dict[str, str] | None = None, user: int | None = None) -> subprocess.CompletedProcess:
    command = ["bash", str(RUNTIME), *args]
    if user is not None:
        command = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=60)


def test_mirror_is_read_from_deb822_and_one_line_sources(tmp_path: Path):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    # Security and updates suites come first, a disabled entry next: none of them is the mirror.
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://security.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n\n"
        "# a comment\nTypes: deb-src deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert runtime("mirror", "bookworm", env={"LEADSCORE_APT_DIR": str(apt)}).stdout.strip() == (
        "http://mirror.example/debian"
    )
    assert runtime("mirror", "trixie", env={"LEADSCORE_APT_DIR": str(apt)}).stdout.strip() == ""

    (apt / "sources.list.d" / "debian.sources").unlink()
    (apt / "sources.list").write_text(
        "# deb http://commented.example/debian bookworm main\n"
        "deb http://security.example/debian-security bookworm-security main\n"
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://old.example/debian bookworm main\n"
    )
    assert runtime("mirror", "bookworm", env={"LEADSCORE_APT_DIR": str(apt)}).stdout.strip() == (
        "http://old.example/debian"
    )


def test_up_refuses_clearly_where_it_cannot_run():
    # Not root (or not Debian 12 / not Linux, wherever this runs): exit code 3 and the reason.
    if os.geteuid() == 0 and shutil.which("setpriv"):
        result = runtime("up", user=65534)
    elif os.geteuid() == 0:
        pytest.skip("needs setpriv to drop root")
    else:
        result = runtime("up")
    assert result.returncode == 3, result.stderr
    assert "cannot set up podman on this machine" in result.stderr
    assert result.stdout == ""


@pytest.mark.skipif(shutil.which("ip") is None, reason="needs iproute2")
def test_netstate_is_stable_between_two_reads():
    first, second = runtime("netstate"), runtime("netstate")
    assert first.returncode == 0
    assert "## ip -o link" in first.stdout and "## sysctls" in first.stdout
    assert first.stdout == second.stdout


def test_loopback_ports_binds_127_0_0_1_only():
    assert smoke.loopback_ports({8080: None}) == {8080: ("127.0.0.1",)}
    assert smoke.loopback_ports({"8080/tcp": 9000}) == {"8080/tcp": ("127.0.0.1", 9000)}
    assert smoke.loopback_ports({8080: ("127.0.0.1", 9000)}) == {8080: ("127.0.0.1", 9000)}
    assert smoke.loopback_ports(None) == {}
    with pytest.raises(smoke.SmokeFailure, match="loopback only"):
        smoke.loopback_ports({8080: ("0.0.0.0", 9000)})


def test_max_difference_compares_numbers_and_refuses_other_differences():
    want = {"predictions": [{"score": 0.5, "attributions": {"a": 0.1}}], "model_version": "1.0.0"}
    got = {"predictions": [{"score": 0.5000004, "attributions": {"a": 0.1}}], "model_version": "1.0.0"}
    assert smoke.max_difference(got, want) == pytest.approx(4e-7)
    assert smoke.max_difference(want, want) == 0.0
    for wrong in (
        {**got, "model_version": "2.0.0"},
        {"predictions": [0.5], "model_version": "1.0.0"},
        {"predictions": [{"score": None, "attributions": {"a": 0.1}}], "model_version": "1.0.0"},
        {"predictions": [], "model_version": "1.0.0"},
    ):
        with pytest.raises(smoke.SmokeFailure):
            smoke.max_difference(wrong, want)


class _FakeDockerApi(BaseHTTPRequestHandler):
    """The four Docker Engine API calls docker-py makes to run a detached container and remove it."""

    requests: list[tuple[str, str, dict]] = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def _reply(self, status: int, payload: dict | None = None) -> None:
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 (http.server naming)
        self.requests.append(("POST", self.path, self._body()))
        if "/containers/create" in self.path:
            self._reply(201, {"Id": "c0ffee", "Warnings": []})
        else:
            self._reply(204)

    def do_GET(self):  # noqa: N802
        self.requests.append(("GET", self.path, {}))
        self._reply(200, {"Id": "c0ffee", "Name": "/smoke", "State": {"Status": "running"}, "Config": {}})

    def do_DELETE(self):  # noqa: N802
        self.requests.append(("DELETE", self.path, {}))
        self._reply(204)


@pytest.fixture
def fake_docker() -> Iterator[str]:
    _FakeDockerApi.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeDockerApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"tcp://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_containers_run_off_the_bridge_on_loopback_and_are_removed(fake_docker: str):
    import docker

    client = docker.DockerClient(base_url=fake_docker, version="1.41")
    with smoke.loopback_containers("slirp4netns") as started:
        # What the SDK's run_prediction_container sends: a random host port, default network.
        client.containers.run("leadscore-smoke:test", ports={8080: None}, environment={"A": "1"}, detach=True)
        assert [c.id for c in started] == ["c0ffee"]
    create = next(body for method, path, body in _FakeDockerApi.requests if "/containers/create" in path)
    host_config = create["HostConfig"]
    assert host_config["NetworkMode"] == "slirp4netns"
    assert host_config["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}
    deletes = [path for method, path, _ in _FakeDockerApi.requests if method == "DELETE"]
    assert len(deletes) == 1 and "/containers/c0ffee" in deletes[0] and "force=True" in deletes[0]
