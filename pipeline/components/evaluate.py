"""Evaluate: the Model scored on the held-out Dataset, as Metrics and ClassificationMetrics."""

from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from pipeline.image import component


@component
def evaluate(
    model: Input[Model],
    test_data: Input[Dataset],
    target: str,
    metrics: Output[Metrics],
    confusion: Output[ClassificationMetrics],
):
    """Logs RMSE, MAE, R² and the RMSE interval, and the 5-bin confusion matrix of scores."""
    from training.steps import dataset_file, evaluate_step, write_json

    scores, evaluation = evaluate_step(model.path, dataset_file(test_data.path), target)
    # Files as well as metadata: kfp.local's cache treats an artifact without a file as a miss.
    write_json(scores, metrics.path)
    write_json(evaluation["confusion_matrix"], confusion.path)
    for name, value in scores.items():
        metrics.log_metric(name, value)
    matrix = evaluation["confusion_matrix"]
    confusion.log_confusion_matrix([spec["displayName"] for spec in matrix["annotationSpecs"]],
                                   [row["row"] for row in matrix["rows"]])
