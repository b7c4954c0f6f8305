"""The lead-scoring pipeline: ingest → validate → preprocess → train → evaluate → register → deploy."""

from kfp import dsl
from kfp.dsl import Artifact

from pipeline.components.deploy import deploy
from pipeline.components.evaluate import evaluate
from pipeline.components.ingest import ingest
from pipeline.components.preprocess import preprocess
from pipeline.components.register import register
from pipeline.components.train import train
from pipeline.components.validate import validate

PIPELINE_NAME = "lead-scoring"


@dsl.pipeline(name=PIPELINE_NAME, description="Train, evaluate, register and (optionally) deploy a lead-scoring model.")
def lead_scoring_pipeline(
    source: str = "",
    data_version: str = "",
    sample_percent: float = 0.0,
    synth_rows: int = 20_000,
    synth_seed: int = 42,
    target: str = "conversion_probability",
    exclude: list = [],  # noqa: B006 (KFP reads defaults from the signature)
    min_rows: int = 100,
    test_size: float = 0.2,
    random_state: int = 42,
    hyperparameters: dict = {},  # noqa: B006
    tune_trials: int = 0,
    model_name: str = "lead-scoring",
    min_improvement: float = 0.0,
    require_significance: bool = False,
    registry: dict = {},  # noqa: B006
    home: str = "",
    endpoint: str = "",
    traffic: int = 10,
) -> Artifact:
    """The whole job; returns the registration decision (a JSON artifact).

    Args:
        source: Data source URI; empty synthesises ``synth_rows`` leads with ``synth_seed``.
        data_version: Snapshot key of the source (keys the ingest cache).
        sample_percent: ``TABLESAMPLE SYSTEM`` percentage; 0 reads every row.
        target: Target column. exclude: columns never used as features.
        hyperparameters: XGBoost hyperparameters (``XGBParams`` fields); empty: the seed's.
        tune_trials: Optuna trials; 0 trains the hyperparameters as given.
        min_improvement: RMSE improvement a challenger needs to be promoted.
        require_significance: Also require the paired-bootstrap interval to exclude zero.
        registry: ``RegistryConfig`` fields; empty: the local registry.
        home: State directory of the local registry (empty on Vertex AI).
        endpoint: Vertex AI endpoint to deploy a promoted model to; empty: no deployment.
        traffic: Canary traffic percentage for a deployment.
    """
    ingested = ingest(source=source, data_version=data_version, sample_percent=sample_percent,
                      synth_rows=synth_rows, synth_seed=synth_seed)
    checked = validate(dataset=ingested.outputs["dataset"], target=target, exclude=exclude, min_rows=min_rows)
    split = preprocess(dataset=ingested.outputs["dataset"], report=checked.outputs["report"], target=target,
                       test_size=test_size, random_state=random_state)
    trained = train(train_data=split.outputs["train_data"], test_data=split.outputs["test_data"], target=target,
                    exclude=exclude, min_rows=min_rows, hyperparameters=hyperparameters, tune_trials=tune_trials,
                    model_name=model_name)
    scored = evaluate(model=trained.outputs["model"], test_data=split.outputs["test_data"], target=target)
    registered = register(model=trained.outputs["model"], test_data=split.outputs["test_data"],
                          metrics=scored.outputs["metrics"], target=target, min_improvement=min_improvement,
                          require_significance=require_significance, registry=registry, home=home)
    # Registration changes the registry: it must run every time, never come from the cache.
    registered.set_caching_options(enable_caching=False)
    with dsl.If(registered.outputs["Output"] == True):  # noqa: E712 (a KFP condition, not a Python test)
        deployed = deploy(decision=registered.outputs["decision"], model_name=model_name, endpoint=endpoint,
                          traffic=traffic, registry=registry)
        deployed.set_caching_options(enable_caching=False)
    return registered.outputs["decision"]
