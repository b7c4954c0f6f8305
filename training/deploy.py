"""Deploying a registered model version to a Vertex AI endpoint: canary split, promotion, clean-up.

The version comes from the Vertex AI registry (``training.registry.vertex``), where registering
uploaded it (``Model.upload`` with the CPR serving image): deploying never uploads a second
copy, and deploying a version that is already on the endpoint only adjusts traffic.

The endpoint is found by display name (or resource name/ID) and created on first use with
request-response logging to BigQuery, the table ``leadscore monitor`` reads. A new version gets
``traffic`` percent (the canary; the versions already deployed keep the rest in proportion), on
dedicated resources (``n1-standard-2``, 1 to 2 replicas by default). ``promote_traffic`` sends
all traffic to it; ``undeploy_old`` keeps the two newest deployed versions and undeploys the rest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.errors import LeadscoreError
from training.registry.base import ModelVersion

log = logging.getLogger(__name__)

DEFAULT_MACHINE_TYPE = "n1-standard-2"
DEFAULT_MIN_REPLICAS = 1
DEFAULT_MAX_REPLICAS = 2
DEFAULT_CANARY_TRAFFIC = 10
KEEP_DEPLOYED = 2
ENDPOINT_LABELS = {"managed-by": "leadscore"}


class DeployError(LeadscoreError):
    """A deployment cannot be made (no such version, an ambiguous endpoint name, a bad traffic value...)."""


@dataclass
class DeployConfig:
    """How to deploy.

    Attributes:
        endpoint: Endpoint display name, resource name or numeric ID; created when the name is new.
        traffic: Percent of traffic for a newly deployed version (the first one always gets 100).
        machine_type: Machine type of the dedicated resources.
        min_replicas: Replicas always running.
        max_replicas: Replicas under load.
        request_logging: Enable request-response logging when the endpoint is created.
        logging_table: ``bq://project.dataset.table`` for the log; Vertex AI's default table
            (``logging_<endpoint>_<id>.request_response_logging``) when None.
        logging_sampling_rate: Share of requests logged.
        promote_traffic: Send 100 % of the traffic to this version.
        undeploy_old: Undeploy all but the two newest deployed versions.
    """

    endpoint: str
    traffic: int = DEFAULT_CANARY_TRAFFIC
    machine_type: str = DEFAULT_MACHINE_TYPE
    min_replicas: int = DEFAULT_MIN_REPLICAS
    max_replicas: int = DEFAULT_MAX_REPLICAS
    request_logging: bool = True
    logging_table: str | None = None
    logging_sampling_rate: float = 1.0
    promote_traffic: bool = False
    undeploy_old: bool = False


@dataclass
class DeployResult:
    """The endpoint after the deployment.

    Attributes:
        endpoint: Endpoint resource name.
        created_endpoint: Whether the endpoint was created by this deployment.
        version: The registry version deployed.
        deployed_model_id: Its deployed model ID on the endpoint.
        newly_deployed: False when it was already deployed (only traffic changed).
        traffic_split: Deployed model ID → percent, as the endpoint reports it afterwards.
        undeployed: Deployed model IDs removed by ``undeploy_old``.
        logging_table: Where requests are logged (None when logging is off).
    """

    endpoint: str
    created_endpoint: bool
    version: ModelVersion
    deployed_model_id: str
    newly_deployed: bool
    traffic_split: dict[str, int]
    undeployed: list[str] = field(default_factory=list)
    logging_table: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "endpoint": self.endpoint, "created_endpoint": self.created_endpoint, "version": self.version.ref,
            "model": self.version.resource_name, "deployed_model_id": self.deployed_model_id,
            "newly_deployed": self.newly_deployed, "traffic_split": self.traffic_split,
            "undeployed": self.undeployed, "logging_table": self.logging_table,
        }


def _check(config: DeployConfig) -> None:
    if not 0 <= config.traffic <= 100:
        raise DeployError(f"--traffic must be between 0 and 100, got {config.traffic}")
    if not 1 <= config.min_replicas <= config.max_replicas:
        raise DeployError(f"replicas must satisfy 1 <= min ({config.min_replicas}) <= max ({config.max_replicas})")
    if not 0 < config.logging_sampling_rate <= 1:
        raise DeployError(f"the logging sampling rate must be in (0, 1], got {config.logging_sampling_rate}")


def find_or_create_endpoint(aiplatform: Any, config: DeployConfig) -> tuple[Any, bool]:
    """The endpoint named by ``config.endpoint``, created (with request logging) if the name is new.

    Returns:
        The endpoint and whether it was created.

    Raises:
        DeployError: Several endpoints carry the display name.
    """
    name = config.endpoint
    if name.isdigit() or name.startswith("projects/"):
        return aiplatform.Endpoint(name), False
    found = aiplatform.Endpoint.list(filter=f'display_name="{name}"')
    if len(found) > 1:
        raise DeployError(f"{len(found)} endpoints are named {name!r}; pass the endpoint's resource name instead")
    if found:
        return found[0], False
    logging_options = {}
    if config.request_logging:
        logging_options = {
            "enable_request_response_logging": True,
            "request_response_logging_sampling_rate": config.logging_sampling_rate,
            "request_response_logging_bq_destination_table": config.logging_table,
        }
    log.info("creating endpoint %s", name)
    return aiplatform.Endpoint.create(display_name=name, labels=ENDPOINT_LABELS, **logging_options), True


def _deployed(endpoint: Any, version: ModelVersion) -> Any | None:
    """The deployed model serving ``version`` on ``endpoint``, if any."""
    model, _, version_id = (version.resource_name or "").partition("@")
    for deployed in endpoint.list_models():
        if deployed.model == model and deployed.model_version_id == version_id:
            return deployed
    return None


def _renormalised(split: dict[str, int], keep: list[str], preferred: str) -> dict[str, int]:
    """The traffic of the ``keep`` models scaled to sum to 100 (all of it to ``preferred`` if they had none)."""
    total = sum(split.get(k, 0) for k in keep)
    if total == 0:
        return {k: (100 if k == preferred else 0) for k in keep}
    scaled = {k: split.get(k, 0) * 100 // total for k in keep}
    scaled[preferred] += 100 - sum(scaled.values())  # rounding remainder
    return scaled


def _registered(registry: Any, ref: str) -> ModelVersion:
    """The registry's version for ``ref``; an artifact directory not in it yet is uploaded first
    (registered without the champion alias: a canary is a candidate, not the champion)."""
    path = Path(ref)
    if path.is_dir():
        found = registry.find_artifacts(path)
        if found is not None:
            return found
        log.info("uploading %s to the Vertex AI registry before deploying it", ref)
        return registry.add_unpromoted(path, "uploaded by leadscore deploy; not compared with the champion").version
    return registry.resolve(ref)


def deploy(registry: Any, ref: str, config: DeployConfig) -> DeployResult:
    """Deploys a version of the Vertex AI registry to an endpoint with a traffic split.

    Args:
        registry: A ``training.registry.vertex.VertexRegistry`` (project, location, credentials).
        ref: ``name@alias`` or ``name@1.2.3`` in that registry, or an artifact directory (uploaded
            to the registry first when it is not there yet).
        config: Endpoint, traffic and resources.

    Returns:
        The endpoint's state afterwards.

    Raises:
        DeployError: Bad settings or an ambiguous endpoint.
        training.errors.RegistryError: The reference names no version of the registry.
    """
    _check(config)
    version = _registered(registry, ref)
    if not version.resource_name:
        raise DeployError(f"{version.ref} has no Vertex AI model resource; register it on Vertex AI first")
    # The registry's SDK set-up (project, location, credentials, API endpoint, REST), not a second one.
    aiplatform = registry._aiplatform()
    endpoint, created = find_or_create_endpoint(aiplatform, config)

    deployed = _deployed(endpoint, version)
    newly_deployed = deployed is None
    if newly_deployed:
        first = not endpoint.traffic_split
        log.info("deploying %s to %s with %d%% of the traffic", version.ref, endpoint.resource_name,
                 100 if first else config.traffic)
        model = aiplatform.Model(version.resource_name)
        # Without DEDICATED_RESOURCES the SDK silently drops the machine spec; refuse instead.
        dedicated = aiplatform.compat.types.model.Model.DeploymentResourcesType.DEDICATED_RESOURCES
        if dedicated not in model.supported_deployment_resources_types:
            raise DeployError(f"{version.ref} ({version.resource_name}) cannot be deployed on dedicated resources; "
                              "was it uploaded with a serving container?")
        model.deploy(
            endpoint=endpoint,
            deployed_model_display_name=f"{version.name}-{version.version}",
            traffic_percentage=100 if first else config.traffic,
            machine_type=config.machine_type,
            min_replica_count=config.min_replicas,
            max_replica_count=config.max_replicas,
            sync=True,
        )
        deployed = _deployed(endpoint, version)
        if deployed is None:
            raise DeployError(f"{version.ref} was deployed but the endpoint does not list it")

    if config.promote_traffic:
        split = {model.id: 0 for model in endpoint.list_models()}
        split[deployed.id] = 100
        endpoint.update(traffic_split=split)

    undeployed: list[str] = []
    if config.undeploy_old:
        newest = sorted(endpoint.list_models(), key=lambda m: m.create_time, reverse=True)
        keep = [m.id for m in newest[:KEEP_DEPLOYED]]
        if deployed.id not in keep:
            keep = [deployed.id] + keep[: KEEP_DEPLOYED - 1]
        for model in newest:
            if model.id in keep:
                continue
            remaining = [m.id for m in endpoint.list_models() if m.id != model.id]
            endpoint.undeploy(model.id, traffic_split=_renormalised(dict(endpoint.traffic_split), remaining,
                                                                    deployed.id))
            undeployed.append(model.id)

    resource = aiplatform.Endpoint(endpoint.resource_name).gca_resource  # the state after all changes
    logging_config = resource.predict_request_response_logging_config
    return DeployResult(
        endpoint=endpoint.resource_name,
        created_endpoint=created,
        version=version,
        deployed_model_id=deployed.id,
        newly_deployed=newly_deployed,
        traffic_split=dict(resource.traffic_split),
        undeployed=undeployed,
        logging_table=(logging_config.bigquery_destination.output_uri or None) if logging_config.enabled else None,
    )
