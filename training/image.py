"""The serving image: a Vertex AI Custom Prediction Routine image built from ``predictor/``.

The build context is minimal: a copy of the ``predictor`` package and a requirements file that
pins the libraries the model was trained with (read from its ``manifest.json``). The image is
built by the SDK's own ``LocalModel.build_cpr_model``, so its entrypoint, environment and
layout are exactly what Vertex AI expects; :func:`dockerfile` runs that same code path up to
the ``docker build`` call and returns the Dockerfile it would send.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import predictor as predictor_package
from predictor.artifacts import METADATA_FILE, open_artifacts, read_json
from predictor.handler import LeadScoringHandler
from predictor.predictor import LeadScoringPredictor
from training.errors import LeadscoreError

# The interpreter the model was trained with: numpy 2.3+ needs Python 3.11+, so the SDK's own
# default (python:3.10) cannot install the pinned versions.
DEFAULT_BASE_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}-slim"
PLATFORM = "linux/amd64"
REQUIREMENTS_FILE = "requirements.txt"
PACKAGE_DIR = "predictor"


class ImageBuildError(LeadscoreError):
    """The serving image cannot be built (no Docker daemon, a failed ``docker build``...)."""


@dataclass
class BuildContext:
    """A staged build context.

    Attributes:
        path: The directory ``docker build`` gets.
        requirements: Its pinned requirements file.
        pins: Distribution name → pinned version.
    """

    path: Path
    requirements: Path
    pins: dict[str, str]


def serving_pins(manifest_versions: dict[str, str]) -> dict[str, str]:
    """The serving image's pinned distributions.

    ``xgboost-cpu`` and ``numpy`` at the versions the model was trained with (``xgboost-cpu`` is
    the same library without the CUDA build's ~350 MB of NCCL), and the handler's JSON codec
    ``orjson`` at the version installed here (it touches no model state). scikit-learn is left
    out on purpose: serving applies the exported transform with numpy and never imports it.

    The SDK's model server is not pinned here: ``build_cpr_model``'s Dockerfile installs
    ``google-cloud-aiplatform[prediction]`` in a layer of its own, then installs this file with
    ``--force-reinstall``, so pinning the SDK here writes it and its dependencies twice (982 MB
    against 685 MB, measured). The predictor relies only on the CPR ``Predictor``/handler
    interface, stable since the SDK's 1.x releases; the smoke test reports the version installed.

    Raises:
        ImageBuildError: The manifest does not record the xgboost or numpy version.
    """
    missing = [name for name in ("xgboost", "numpy") if name not in manifest_versions]
    if missing:
        raise ImageBuildError(f"the model's manifest.json records no version of {', '.join(missing)}")
    return {
        "xgboost-cpu": manifest_versions["xgboost"],
        "numpy": manifest_versions["numpy"],
        "orjson": importlib.metadata.version("orjson"),
    }


def stage_context(model_uri: str, directory: Path) -> BuildContext:
    """Writes the build context for a model into ``directory`` (created; must be empty or absent).

    Args:
        model_uri: The model's artifact directory or ``gs://`` URI; only its manifest's library
            versions are used (the image loads the model from ``AIP_STORAGE_URI`` at run time).
        directory: Where to stage.

    Returns:
        The staged context.
    """
    artifacts = open_artifacts(model_uri)
    try:
        pins = serving_pins(artifacts.manifest.get("versions", {}))
        name = _model_label(artifacts.path)
    finally:
        artifacts.cleanup()
    directory = Path(directory)
    if directory.exists() and any(directory.iterdir()):
        raise ImageBuildError(f"{directory}: build context directory is not empty")
    directory.mkdir(parents=True, exist_ok=True)
    source = Path(predictor_package.__file__).parent
    shutil.copytree(source, directory / PACKAGE_DIR, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    requirements = directory / REQUIREMENTS_FILE
    lines = [f"# Serving dependencies of the leadscore CPR image, pinned to what {name} was trained with."]
    lines += [f"{dist}=={version}" for dist, version in pins.items()]
    requirements.write_text("\n".join(lines) + "\n")
    return BuildContext(path=directory, requirements=requirements, pins=pins)


def _model_label(path: Path) -> str:
    meta = read_json(path / METADATA_FILE)
    return f"{meta.get('model_name', 'the model')} {meta.get('version') or '(unregistered)'}"


def _load_from_context(context: Path, cls: type) -> tuple[type, ModuleType]:
    """Imports ``cls`` from the staged copy of its module under a private module name.

    ``build_cpr_model`` derives ``PREDICTOR_MODULE``/``HANDLER_MODULE`` from the class's source
    file relative to the context (and refuses a class defined outside it), so it must be handed
    the class as defined by the staged copy. The copy's own imports resolve to the installed
    package, which is the same code.
    """
    path = context.joinpath(*cls.__module__.split(".")).with_suffix(".py")
    name = f"_leadscore_image_context.{cls.__module__}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImageBuildError(f"{path}: cannot import the staged {cls.__name__}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # inspect.getsourcefile finds a class's file through sys.modules
    spec.loader.exec_module(module)
    return getattr(module, cls.__name__), module


def _build_cpr_model(context: BuildContext, image_uri: str, base_image: str) -> None:
    from google.cloud.aiplatform.docker_utils.errors import DockerError
    from google.cloud.aiplatform.prediction import LocalModel

    predictor_cls, predictor_module = _load_from_context(context.path, LeadScoringPredictor)
    handler_cls, handler_module = _load_from_context(context.path, LeadScoringHandler)
    try:
        LocalModel.build_cpr_model(
            str(context.path),
            image_uri,
            predictor=predictor_cls,
            handler=handler_cls,
            requirements_path=str(context.requirements),
            base_image=base_image,
            platform=PLATFORM,
        )
    except DockerError as exc:
        raise ImageBuildError(f"docker build of {image_uri} failed (exit code {exc.exit_code})") from exc
    except FileNotFoundError as exc:
        raise ImageBuildError(f"cannot run docker ({exc}); set DOCKER_HOST or install Docker/podman") from exc
    finally:
        sys.modules.pop(predictor_module.__name__, None)
        sys.modules.pop(handler_module.__name__, None)


@contextmanager
def _context_dir(directory: Path | None) -> Iterator[Path]:
    if directory is not None:
        yield Path(directory)
        return
    with tempfile.TemporaryDirectory(prefix="leadscore-image-") as tmp:
        yield Path(tmp)


def build_image(model_uri: str, image_uri: str, base_image: str = DEFAULT_BASE_IMAGE,
                context_dir: Path | None = None) -> BuildContext:
    """Builds the CPR serving image with ``LocalModel.build_cpr_model`` (needs a Docker API).

    Args:
        model_uri: The model whose library versions the image pins.
        image_uri: The image to tag, e.g. ``us-docker.pkg.dev/PROJECT/REPO/leadscore:1.2.0``.
        base_image: A base image with ``python`` and ``pip``.
        context_dir: Stage the build context here and keep it; a temporary directory otherwise.

    Returns:
        The staged context (removed after the build unless ``context_dir`` was given).

    Raises:
        ImageBuildError: The build failed.
    """
    with _context_dir(context_dir) as directory:
        context = stage_context(model_uri, directory)
        _build_cpr_model(context, image_uri, base_image)
        return context


def dockerfile(model_uri: str, image_uri: str = "leadscore-serving:local", base_image: str = DEFAULT_BASE_IMAGE) -> str:
    """The Dockerfile :func:`build_image` would build, produced by the SDK's real build path.

    ``build_cpr_model`` runs unchanged up to the point where it pipes the Dockerfile into
    ``docker build``; that one call is intercepted, so no Docker is needed.
    """
    from google.cloud.aiplatform.docker_utils import build

    sent: dict[str, Any] = {}

    def capture(command: list[str], input_str: str | None = None, **kwargs: Any) -> int:
        sent.update(command=command, dockerfile=input_str)
        return 0

    with _context_dir(None) as directory, mock.patch.object(build.local_util, "execute_command", capture):
        _build_cpr_model(stage_context(model_uri, directory), image_uri, base_image)
    return sent["dockerfile"]
