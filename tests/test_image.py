"""The CPR serving image: the staged build context and the Dockerfile the SDK's real build path generates."""

from __future__ import annotations

import importlib.metadata
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from predictor.artifacts import read_json
from training.image import ImageBuildError, build_image, dockerfile, stage_context
from training.serve import server_env

# The SDK opens docker's pipes with bufsize=1 in binary mode; Python warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:line buffering:RuntimeWarning")

SERVER_KEYS = ("HANDLER_MODULE", "HANDLER_CLASS", "PREDICTOR_MODULE", "PREDICTOR_CLASS")


def _env_lines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^ENV (\w+)=(\S+)$", text, flags=re.MULTILINE))


@pytest.fixture(scope="module")
def synth_dockerfile(synth_model: Path) -> str:
    return dockerfile(str(synth_model), "example.com/leadscore:test", base_image="python:3.11-slim")


def test_entrypoint_is_the_cpr_model_server(synth_dockerfile: str):
    assert 'ENTRYPOINT ["python", "-m", "google.cloud.aiplatform.prediction.model_server"]' in synth_dockerfile
    assert synth_dockerfile.lstrip().startswith("FROM python:3.11-slim")
    assert "EXPOSE 8080" in synth_dockerfile


def test_image_env_is_the_local_servers_env(synth_dockerfile: str, synth_model: Path):
    env = _env_lines(synth_dockerfile)
    local = server_env(synth_model, 8080)
    assert {key: env[key] for key in SERVER_KEYS} == {key: local[key] for key in SERVER_KEYS}
    assert env["HANDLER_CLASS"] == "LeadScoringHandler"  # the hardened handler, not the SDK default


def test_dockerfile_installs_the_pinned_requirements(synth_dockerfile: str):
    assert re.search(r"^COPY \[\"\.\", \"\.\"\]$", synth_dockerfile, flags=re.MULTILINE)
    assert re.search(r"^RUN pip install .* -r requirements\.txt$", synth_dockerfile, flags=re.MULTILINE)


def test_requirements_pin_the_models_versions(synth_model: Path, tmp_path: Path):
    context = stage_context(str(synth_model), tmp_path / "ctx")
    versions = read_json(synth_model / "manifest.json")["versions"]
    lines = [line for line in context.requirements.read_text().splitlines() if not line.startswith("#")]
    assert sorted(lines) == sorted([
        f"xgboost-cpu=={versions['xgboost']}",
        f"numpy=={versions['numpy']}",
        f"orjson=={importlib.metadata.version('orjson')}",
    ])  # no SDK pin: the generated Dockerfile's own SDK layer would be written twice


def test_context_holds_only_the_predictor_package_and_requirements(synth_model: Path, tmp_path: Path):
    context = stage_context(str(synth_model), tmp_path / "ctx")
    top = sorted(p.name for p in context.path.iterdir())
    assert top == ["predictor", "requirements.txt"]
    staged = sorted(p.name for p in (context.path / "predictor").iterdir())
    assert "predictor.py" in staged and "handler.py" in staged and "__pycache__" not in staged


def test_predictor_and_handler_modules_resolve_inside_the_context(synth_dockerfile: str, synth_model: Path,
                                                                  tmp_path: Path):
    """What the image's Python does: import the ENV's modules from the work dir, without ``training``."""
    env = _env_lines(synth_dockerfile)
    context = stage_context(str(synth_model), tmp_path / "ctx")
    script = (
        "import importlib, json, sys\n"
        f"env = {json.dumps(env)}\n"
        "found = {}\n"
        "for kind in ('HANDLER', 'PREDICTOR'):\n"
        "    module = importlib.import_module(env[kind + '_MODULE'])\n"
        "    getattr(module, env[kind + '_CLASS'])\n"
        "    found[kind] = module.__file__\n"
        "found['training_imported'] = any(m == 'training' or m.startswith('training.') for m in sys.modules)\n"
        "print(json.dumps(found))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=context.path, capture_output=True, text=True,
                            check=True)
    found = json.loads(result.stdout)
    for kind in ("HANDLER", "PREDICTOR"):
        assert Path(found[kind]).resolve().is_relative_to(context.path.resolve())
    assert found["training_imported"] is False


def test_context_directory_must_be_empty(synth_model: Path, tmp_path: Path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(ImageBuildError, match="not empty"):
        stage_context(str(synth_model), tmp_path / "busy")


def test_build_without_a_docker_api_is_a_clear_error(synth_model: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    monkeypatch.setenv("PATH", str(tmp_path))  # and no docker CLI at all
    with pytest.raises(ImageBuildError, match="docker"):
        build_image(str(synth_model), "example.com/leadscore:test", context_dir=tmp_path / "ctx")
    assert (tmp_path / "ctx" / "requirements.txt").is_file()  # the kept context is there to inspect


def test_build_runs_docker_build_for_linux_amd64_on_the_staged_context(synth_model: Path, tmp_path: Path,
                                                                      monkeypatch):
    """The real build path with a recording stand-in for the docker CLI (there is no Docker daemon here)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "docker-call"
    (bin_dir / "docker").write_text(f'#!/bin/sh\necho "$@" > {record}.args\ncat > {record}.stdin\n')
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    context = build_image(str(synth_model), "example.com/leadscore:1.0.0", context_dir=tmp_path / "ctx")
    args = record.with_suffix(".args").read_text().split()
    assert args[0] == "build"
    assert args[args.index("--platform") + 1] == "linux/amd64"
    assert args[args.index("-t") + 1] == "example.com/leadscore:1.0.0"
    assert Path(args[-1]).resolve() == context.path.resolve()
    sent = record.with_suffix(".stdin").read_text()
    assert _env_lines(sent)["PREDICTOR_CLASS"] == "LeadScoringPredictor"
    assert sent == dockerfile(str(synth_model), "example.com/leadscore:1.0.0")
