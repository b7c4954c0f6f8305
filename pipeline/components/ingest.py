"""Ingest: the source (or synthetic leads) into a Parquet Dataset."""

from kfp.dsl import Dataset, Output

from pipeline.image import component


@component
def ingest(
    source: str,
    data_version: str,
    sample_percent: float,
    synth_rows: int,
    synth_seed: int,
    dataset: Output[Dataset],
):
    """Reads ``source`` (empty: synthesise leads). ``data_version`` only keys the cache: the
    main job sets it to the source's snapshot, so new data is never served from the cache."""
    from training.steps import dataset_file, StepData, ingest_step

    data = StepData(source=source or None, sample_percent=sample_percent or None, synth_rows=synth_rows,
                    synth_seed=synth_seed)
    dataset.metadata["rows"] = ingest_step(data, dataset_file(dataset.path))
    dataset.metadata["data_version"] = data_version
