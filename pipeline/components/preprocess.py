"""Preprocess: the labelled rows split into training and held-out Datasets."""

from kfp.dsl import Artifact, Dataset, Input, Output

from pipeline.image import component


@component
def preprocess(
    dataset: Input[Dataset],
    report: Input[Artifact],
    target: str,
    test_size: float,
    random_state: int,
    train_data: Output[Dataset],
    test_data: Output[Dataset],
):
    """Splits 80/20 with ``random_state`` (the seed's split). ``report`` orders it after validation."""
    from training.steps import dataset_file, split_step

    train_rows, test_rows = split_step(dataset_file(dataset.path), dataset_file(train_data.path), dataset_file(test_data.path), target, test_size,
                                       random_state)
    train_data.metadata["rows"], test_data.metadata["rows"] = train_rows, test_rows
