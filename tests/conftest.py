"""Shared fixtures: real data, trained artifact directories and the real CPR server."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from training.serve import ServerProcess, start_server_process
from training.state import HOME_ENV
from training.synth import generate_leads, write_table
from training.train import TrainConfig, TrainResult, XGBParams, train

DATA_DIR = Path(__file__).parent / "data"
XEDU_CSV = DATA_DIR / "leads_xeducation.csv"
XEDU_TARGET = "Converted"
# Filled in by sales after contact: leakage for a model that scores new leads.
XEDU_LEAKAGE = ["Tags", "Lead Quality", "Last Notable Activity"]


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tests' state directory (runs, registry, logs): a temporary one, never ./.leadscore."""
    previous = os.environ.get(HOME_ENV)
    home = tmp_path_factory.mktemp("leadscore-home")
    os.environ[HOME_ENV] = str(home)
    yield home
    if previous is None:
        os.environ.pop(HOME_ENV, None)
    else:
        os.environ[HOME_ENV] = previous


@pytest.fixture(scope="session")
def synth_parquet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 synthetic leads as Parquet."""
    return write_table(generate_leads(5_000, seed=7), tmp_path_factory.mktemp("data") / "leads.parquet")


@pytest.fixture(scope="session")
def synth_model(tmp_path_factory: pytest.TempPathFactory, synth_parquet: Path) -> Path:
    """An artifact directory trained on the synthetic leads."""
    out = tmp_path_factory.mktemp("models") / "synth"
    train(TrainConfig(data=str(synth_parquet), out=out))
    return out


@pytest.fixture(scope="session")
def synth_run(tmp_path_factory: pytest.TempPathFactory, synth_parquet: Path) -> Callable[..., TrainResult]:
    """Factory of cached training runs on the synthetic leads, all with the same split (same held-out rows).

    ``synth_run(max_depth=2, n_estimators=20)`` or ``synth_run(exclude=("industry",))``: keyword
    arguments are ``XGBParams`` fields, plus ``exclude``. Each distinct run is trained once per session.
    """
    runs: dict[tuple, TrainResult] = {}

    def factory(exclude: tuple[str, ...] = (), **params) -> TrainResult:
        key = (tuple(exclude), tuple(sorted(params.items())))
        if key not in runs:
            out = tmp_path_factory.mktemp("runs") / "model"
            runs[key] = train(TrainConfig(data=str(synth_parquet), out=out, exclude=list(exclude),
                                          params=XGBParams(**params)))
        return runs[key]

    return factory


@pytest.fixture(scope="session")
def xedu_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An artifact directory trained on the real X Education leads."""
    out = tmp_path_factory.mktemp("models") / "xedu"
    train(TrainConfig(data=str(XEDU_CSV), out=out, target=XEDU_TARGET, exclude=XEDU_LEAKAGE))
    return out


class RunningServer(ServerProcess):
    """A server process with a helper to POST raw bodies."""

    def post(self, body: bytes | str, content_type: str = "application/json", headers: dict[str, str] | None = None,
             **kwargs) -> httpx.Response:
        headers = {"Content-Type": content_type, **(headers or {})}
        return httpx.post(f"{self.url}/predict", content=body, headers=headers, **kwargs)


def start_server(artifacts: Path | str, extra_env: dict[str, str] | None = None, timeout: float = 60.0) -> RunningServer:
    """Starts the real ``CprModelServer`` under uvicorn on a free port and waits for /health."""
    server = start_server_process(artifacts, extra_env=extra_env, timeout=timeout)
    return RunningServer(server.process, server.url)


@pytest.fixture
def cpr_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory fixture: ``cpr_server(artifacts, extra_env=None)`` starts a server, stopped at teardown."""
    started: list[RunningServer] = []

    def factory(artifacts: Path | str, extra_env: dict[str, str] | None = None) -> RunningServer:
        server = start_server(artifacts, extra_env)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def synth_server(synth_model: Path) -> Iterator[RunningServer]:
    """One server for the synthetic model, shared by a test module."""
    server = start_server(synth_model)
    yield server
    server.stop()
