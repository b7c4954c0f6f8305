"""Register and promote: the challenger against the champion on the same held-out rows."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from pipeline.image import component


@component
def register(
    model: Input[Model],
    test_data: Input[Dataset],
    metrics: Input[Metrics],
    target: str,
    min_improvement: float,
    require_significance: bool,
    registry: dict,
    home: str,
    decision: Output[Artifact],
) -> bool:
    """Registers the model, applies the promotion policy and returns whether it was promoted.

    The decision (version, both RMSEs, the reason) goes to the ``decision`` artifact as JSON.
    The single return value keeps the ``dsl.If`` on it resolvable by ``kfp.local`` too, whose
    condition evaluator cannot read named outputs. ``metrics`` orders this after evaluation.
    """
    import os

    from training.registry.promotion import PromotionPolicy
    from training.steps import dataset_file, open_step_registry, register_step, write_json

    if home:  # the local registry lives in the state directory of the job that started the run
        os.environ["LEADSCORE_HOME"] = home
    registration = register_step(model.path, dataset_file(test_data.path), target,
                                 PromotionPolicy(min_improvement, require_significance),
                                 open_step_registry(registry))
    write_json(registration.to_dict(), decision.path)
    decision.metadata.update({"version": registration.version.version, "promoted": registration.promoted,
                              "reason": registration.event.reason})
    return registration.promoted
