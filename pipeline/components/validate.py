"""Validate: stops the run (a failed task) before anything is trained or registered."""

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline.image import component


@component
def validate(dataset: Input[Dataset], target: str, exclude: list, min_rows: int, report: Output[Artifact]):
    """Checks the dataset; raises ``DataError`` (failing the task) when it cannot be trained on."""
    from training.steps import dataset_file, StepData, validate_step, write_json

    write_json(validate_step(dataset_file(dataset.path), StepData(target=target, exclude=list(exclude), min_rows=min_rows)),
               report.path)
