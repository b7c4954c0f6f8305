"""Running the Vertex AI CPR model server locally, configured exactly as the CPR image is."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from predictor.handler import LeadScoringHandler
from predictor.predictor import LeadScoringPredictor

CPR_APP = "google.cloud.aiplatform.prediction.model_server:CprModelServer"
# Derived from the classes, which are also what the image build hands to
# LocalModel.build_cpr_model: the local server and the image cannot drift apart.
HANDLER_MODULE = LeadScoringHandler.__module__
HANDLER_CLASS = LeadScoringHandler.__name__
PREDICTOR_MODULE = LeadScoringPredictor.__module__
PREDICTOR_CLASS = LeadScoringPredictor.__name__
HEALTH_ROUTE = "/health"
PREDICT_ROUTE = "/predict"


def server_env(artifacts_uri: str | Path, port: int) -> dict[str, str]:
    """The environment the CPR server reads: the same variables ``LocalModel.build_cpr_model`` bakes
    into the image (``HANDLER_*``, ``PREDICTOR_*``) and Vertex AI sets at run time (``AIP_*``)."""
    uri = str(artifacts_uri)
    if not uri.startswith("gs://"):
        uri = str(Path(uri).absolute())
    return {
        "HANDLER_MODULE": HANDLER_MODULE,
        "HANDLER_CLASS": HANDLER_CLASS,
        "PREDICTOR_MODULE": PREDICTOR_MODULE,
        "PREDICTOR_CLASS": PREDICTOR_CLASS,
        "AIP_STORAGE_URI": uri,
        "AIP_HTTP_PORT": str(port),
        "AIP_HEALTH_ROUTE": HEALTH_ROUTE,
        "AIP_PREDICT_ROUTE": PREDICT_ROUTE,
    }


def uvicorn_command(host: str, port: int, workers: int = 1) -> list[str]:
    """Arguments (after ``python -m``) that start the CPR server under uvicorn."""
    return ["uvicorn", CPR_APP, "--factory", "--host", host, "--port", str(port), "--workers", str(workers),
            "--no-access-log"]


def serve(artifacts_uri: str | Path, host: str = "127.0.0.1", port: int = 8080, workers: int = 1) -> None:
    """Serves a model with the real ``CprModelServer`` under uvicorn until interrupted.

    Args:
        artifacts_uri: Artifact directory or ``gs://`` URI (``AIP_STORAGE_URI``).
        host: Interface to bind; loopback by default.
        port: TCP port (``AIP_HTTP_PORT``).
        workers: uvicorn worker processes.
    """
    import uvicorn

    os.environ.update(server_env(artifacts_uri, port))
    uvicorn.run(CPR_APP, factory=True, host=host, port=port, workers=workers, access_log=False)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerStartError(RuntimeError):
    """The server process exited or did not become healthy."""


@dataclass
class ServerProcess:
    """A CPR model server running in a child process."""

    process: subprocess.Popen
    url: str

    def stop(self) -> None:
        """Stops the server (SIGTERM, then SIGKILL after 10 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server_process(
    artifacts_uri: str | Path,
    host: str = "127.0.0.1",
    port: int | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Starts the CPR model server in a child process and waits until ``/health`` answers 200.

    Raises:
        ServerStartError: The process exited (its output is in the message) or timed out.
    """
    import httpx

    port = port or free_port(host)
    env = {**os.environ, **server_env(artifacts_uri, port), **(extra_env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", *uvicorn_command(host, port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            raise ServerStartError(f"server exited with code {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}{HEALTH_ROUTE}", timeout=1.0).status_code == 200:
                return ServerProcess(process, url)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise ServerStartError(f"server on {url} did not become healthy within {timeout:.0f} s")
