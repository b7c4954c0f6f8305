"""Train (or tune, then train): the artifact directory as a Model."""

from kfp.dsl import Dataset, Input, Model, Output

from pipeline.image import component


@component
def train(
    train_data: Input[Dataset],
    test_data: Input[Dataset],
    target: str,
    exclude: list,
    min_rows: int,
    hyperparameters: dict,
    tune_trials: int,
    model_name: str,
    model: Output[Model],
):
    """Writes the artifact directory (what ``AIP_STORAGE_URI`` points at) at ``model.path``."""
    from training.steps import StepData, dataset_file, train_step, xgb_params

    result = train_step(dataset_file(train_data.path), dataset_file(test_data.path), model.path,
                        StepData(target=target, exclude=list(exclude), min_rows=min_rows),
                        xgb_params(hyperparameters), tune_trials, model_name)
    model.metadata.update({"rmse": result.metrics["rmse"], "run_id": result.run_id, "framework": "xgboost"})
