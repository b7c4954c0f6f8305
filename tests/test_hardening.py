"""The hardened request handler on the real CPR server: size limits, short 4xx, 500s that leak nothing, load."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from predictor.artifacts import read_json, write_manifest
from training.synth import EXAMPLE_LEAD

LIMIT = 4_000


@pytest.fixture(scope="module")
def small_limit_server(synth_model: Path):
    from tests.conftest import start_server

    server = start_server(synth_model, extra_env={"LEADSCORE_MAX_BODY_BYTES": str(LIMIT)})
    yield server
    server.stop()


def _body(size: int) -> bytes:
    """A valid request padded with spaces to exactly ``size`` bytes."""
    body = json.dumps({"instances": [EXAMPLE_LEAD]}).encode()
    return body + b" " * (size - len(body))


def test_body_at_the_limit_is_scored(small_limit_server):
    response = small_limit_server.post(_body(LIMIT))
    assert response.status_code == 200, response.text


def test_body_over_the_limit_is_413(small_limit_server):
    response = small_limit_server.post(_body(LIMIT + 1))
    assert response.status_code == 413
    assert f"exceeds {LIMIT} bytes" in response.json()["detail"]


def test_chunked_body_over_the_limit_is_413(small_limit_server):
    """No Content-Length: the cap applies while the body streams in."""
    chunks = [_body(1_000)] + [b" " * 1_000] * 10
    response = httpx.post(f"{small_limit_server.url}/predict", content=iter(chunks),
                          headers={"Content-Type": "application/json"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert response.status_code == 413


def test_oversized_content_length_is_refused_before_the_body_is_sent(small_limit_server):
    """The server answers a 1 GB Content-Length at once: it does not wait for (or buffer) the body."""
    url = urlparse(small_limit_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n{\"instances\": [")
        reply = sock.recv(65536).decode(errors="replace")
    assert reply.startswith("HTTP/1.1 413"), reply[:200]


def test_malformed_json_does_not_echo_the_body(synth_server):
    secret = "do-not-echo-" + "x" * 50
    response = synth_server.post('{"instances": [{"note": "' + secret + '"}, oops]}')
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "not valid JSON" in detail and "column" in detail
    assert secret not in detail


def test_invalid_utf8_is_400(synth_server):
    response = synth_server.post(b'{"instances": [{"industry": "\xff\xfe"}]}')
    assert response.status_code == 400 and "UTF-8" in response.json()["detail"]


@pytest.fixture
def mismatched_model(synth_model: Path, tmp_path: Path) -> Path:
    """A valid-looking artifact whose transform yields one column more than the booster takes."""
    broken = tmp_path / "mismatched"
    shutil.copytree(synth_model, broken)
    transform = read_json(broken / "transform.json")
    transform["numeric"].append(dict(transform["numeric"][0], name="extra_feature"))
    transform["output_names"] = []
    (broken / "transform.json").write_text(json.dumps(transform))
    write_manifest(broken, read_json(broken / "manifest.json")["versions"])
    return broken


def test_internal_error_is_500_without_traceback_or_arguments(mismatched_model: Path, cpr_server):
    server = cpr_server(mismatched_model)
    response = server.post(json.dumps({"instances": [EXAMPLE_LEAD]}))
    assert response.status_code == 500
    detail = response.json()["detail"]
    assert detail.startswith("internal error while scoring the request (error id ")
    for leak in ("Traceback", "Stack trace", "XGBoostError", "libxgboost", "Check failed", "Arguments", "/"):
        assert leak not in detail
    error_id = detail.rsplit(" ", 1)[-1].rstrip(")")
    server.stop()
    log = server.process.stdout.read().decode(errors="replace")
    assert error_id in log and "Check failed" in log  # the details are in the server log


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_concurrent_clients_get_no_errors_and_memory_stays_flat(synth_server):
    """8 clients x 150 requests (the full 8 x 2,000 run is benchmarks/serve_load.py)."""
    clients, per_client = 8, 150
    bodies = [json.dumps({"instances": [EXAMPLE_LEAD | {"pages_visited": i % 40}] * (1 + i % 5)}) for i in range(50)]
    failures: list[str] = []

    def run(worker: int) -> None:
        with httpx.Client(base_url=synth_server.url, headers={"Content-Type": "application/json"},
                          timeout=30) as client:
            for i in range(per_client):
                body = bodies[(worker * per_client + i) % len(bodies)]
                response = client.post("/predict", content=body)
                if response.status_code != 200 or len(response.json()["predictions"]) != body.count("company_size"):
                    failures.append(f"{response.status_code}: {response.text[:200]}")

    def round_of_load() -> None:
        threads = [threading.Thread(target=run, args=(w,)) for w in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    round_of_load()  # warm-up: allocator pools and caches reach their working size
    time.sleep(0.2)
    before = _rss_kib(synth_server.process.pid)
    round_of_load()
    round_of_load()
    after = _rss_kib(synth_server.process.pid)
    assert failures == []
    assert after - before < 20 * 1024, f"server RSS grew from {before} KiB to {after} KiB"
