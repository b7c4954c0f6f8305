"""Which registry to use: the local one (default) or Vertex AI Model Registry, from options or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from training.errors import RegistryError
from training.state import home_dir

if TYPE_CHECKING:
    from training.registry.base import Registry

BACKEND_ENV = "LEADSCORE_REGISTRY"
PROJECT_ENV = "GOOGLE_CLOUD_PROJECT"
REGION_ENV = "GOOGLE_CLOUD_REGION"
REGISTRY_URI_ENV = "LEADSCORE_REGISTRY_URI"
SERVING_IMAGE_ENV = "LEADSCORE_SERVING_IMAGE"
VERTEX_ENDPOINT_ENV = "LEADSCORE_VERTEX_ENDPOINT"
LOCAL, VERTEX = "local", "vertex"
DEFAULT_REGION = "us-central1"
REGISTRY_DIR = "registry"


@dataclass
class RegistryConfig:
    """Which registry to use.

    Attributes:
        backend: ``local`` (default) or ``vertex``.
        project: Google Cloud project (Vertex AI).
        location: Vertex AI region.
        registry_uri: ``gs://bucket/prefix`` for artifacts and the promotion log (Vertex AI).
        serving_image: The CPR serving image for ``Model.upload`` (Vertex AI registration).
        api_endpoint: Vertex AI API endpoint override.
    """

    backend: str = LOCAL
    project: str | None = None
    location: str = DEFAULT_REGION
    registry_uri: str | None = None
    serving_image: str | None = None
    api_endpoint: str | None = None

    @classmethod
    def from_env(cls) -> RegistryConfig:
        """The configuration in the environment (``LEADSCORE_REGISTRY``, ``GOOGLE_CLOUD_PROJECT``,
        ``GOOGLE_CLOUD_REGION``, ``LEADSCORE_REGISTRY_URI``, ``LEADSCORE_SERVING_IMAGE``,
        ``LEADSCORE_VERTEX_ENDPOINT``)."""
        env = os.environ
        return cls(
            backend=env.get(BACKEND_ENV) or LOCAL,
            project=env.get(PROJECT_ENV) or None,
            location=env.get(REGION_ENV) or DEFAULT_REGION,
            registry_uri=env.get(REGISTRY_URI_ENV) or None,
            serving_image=env.get(SERVING_IMAGE_ENV) or None,
            api_endpoint=env.get(VERTEX_ENDPOINT_ENV) or None,
        )


def open_registry(config: RegistryConfig | None = None) -> Registry:
    """The configured registry (default: the environment's; local unless it says ``vertex``).

    Raises:
        RegistryError: Unknown backend, or Vertex AI without a project or registry URI.
    """
    config = config or RegistryConfig.from_env()
    if config.backend == LOCAL:
        from training.registry.local import LocalRegistry

        return LocalRegistry(home_dir() / REGISTRY_DIR)
    if config.backend == VERTEX:
        missing = [env for env, value in ((PROJECT_ENV, config.project), (REGISTRY_URI_ENV, config.registry_uri))
                   if not value]
        if missing:
            raise RegistryError(f"the Vertex AI registry needs {' and '.join(missing)} (or the matching options)")
        from training.registry.vertex import VertexRegistry

        return VertexRegistry(config.project, config.location, config.registry_uri, config.serving_image,
                              api_endpoint=config.api_endpoint)
    raise RegistryError(f"unknown registry backend {config.backend!r}: use {LOCAL} or {VERTEX}")

