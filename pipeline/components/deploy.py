"""Deploy: the promoted version to a Vertex AI endpoint; a no-op without a serving target."""

from kfp.dsl import Artifact, Input

from pipeline.image import component


@component
def deploy(decision: Input[Artifact], model_name: str, endpoint: str, traffic: int, registry: dict) -> str:
    """Deploys the registered version with ``traffic`` % (canary); returns what was done."""
    import json

    from training.steps import deploy_step

    with open(decision.path) as handle:
        version = json.load(handle)["version"]["version"]
    return deploy_step(model_name, version, endpoint, traffic, registry)
