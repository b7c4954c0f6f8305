"""Experiment tracking: the local run log, the runs CLI, and Vertex AI Experiments at the wire."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost
from google.auth.credentials import AnonymousCredentials
from typer.testing import CliRunner

from tests.experiments_fake import VertexMetadata
from tests.vertex_fake import FakeApi
from training import export
from training.cli import app
from training.errors import OutputError
from training.fingerprint import data_fingerprint
from training.sources import ingest
from training.state import HOME_ENV
from training.tracking import RunStore, TrackingConfig, VertexExperiment
from training.train import TrainConfig, XGBParams, train


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "state"))
    return tmp_path / "state"


def test_a_run_records_params_metrics_data_code_packages_and_artifacts(home: Path, synth_parquet: Path, tmp_path):
    result = train(TrainConfig(data=str(synth_parquet), out=tmp_path / "model", params=XGBParams(max_depth=4)))
    run = RunStore().get(result.run_id)
    metadata = json.loads((result.out / "metadata.json").read_text())
    assert (home / "runs.db").is_file()
    assert run.status == "finished" and run.ended_at >= run.started_at
    assert run.params["max_depth"] == 4 and run.params["target"] == "conversion_probability"
    assert run.metrics == json.loads((result.out / "metrics.json").read_text())
    assert run.artifact_uri == str(result.out) and metadata["run_id"] == run.run_id
    fingerprint = run.data["fingerprint"]
    assert fingerprint == metadata["data"]["fingerprint"] == data_fingerprint(ingest(synth_parquet))
    assert fingerprint["rows"] == 5000 and fingerprint["schema"]["industry"] == "string"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent)
    assert run.code["git_sha"] == head.stdout.strip()
    assert run.packages["xgboost"] == xgboost.__version__ and "duckdb" in run.packages
    assert "SELECT * FROM" in run.data["query"]


def test_the_fingerprint_follows_content_not_chunking(synth_parquet: Path, tmp_path: Path):
    table = pq.read_table(synth_parquet)
    rechunked = pa.Table.from_batches(table.to_batches(max_chunksize=333))
    assert data_fingerprint(rechunked) == data_fingerprint(table)
    changed = table.set_column(1, "company_size", pa.array([1.0] + table["company_size"].to_pylist()[1:]))
    assert data_fingerprint(changed)["sha256"] != data_fingerprint(table)["sha256"]
    assert data_fingerprint(table.slice(1))["rows"] == 4999


def test_a_crashed_run_is_recorded_as_failed(home: Path, synth_parquet: Path, tmp_path: Path, monkeypatch):
    def crash(directory):
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_manifest", crash)
    with pytest.raises(OutputError, match="disk full"):
        train(TrainConfig(data=str(synth_parquet), out=tmp_path / "model"))
    [run] = RunStore().list()
    assert run.status == "failed" and run.artifact_uri is None
    assert run.error.startswith("OutputError: ") and "could not be written (disk full)" in run.error
    assert not (tmp_path / "model").exists()


def test_runs_cli_lists_shows_and_compares(home: Path, synth_parquet: Path, tmp_path: Path):
    runner = CliRunner()
    ids = []
    for depth in (3, 5):
        result = runner.invoke(app, ["train", "--data", str(synth_parquet), "--out", str(tmp_path / f"m{depth}"),
                                     "--max-depth", str(depth), "--json"])
        assert result.exit_code == 0, result.output
        ids.append(json.loads(result.stdout[result.stdout.index("{"):])["run_id"])
    listed = json.loads(runner.invoke(app, ["runs", "list", "--json"]).stdout)
    assert [r["run_id"] for r in listed] == ids[::-1]  # newest first
    shown = json.loads(runner.invoke(app, ["runs", "show", ids[0][:-2], "--json"]).stdout)  # a unique prefix
    assert shown["run_id"] == ids[0] and shown["params"]["max_depth"] == 3
    compared = json.loads(runner.invoke(app, ["runs", "compare", *ids, "--json"]).stdout)
    assert compared["same_data"] is True
    assert compared["rows"]["param max_depth"] == [3, 5]
    assert "param target" not in compared["rows"]  # only the parameters that differ
    assert compared["rows"]["metric rmse"] == [r["metrics"]["rmse"] for r in listed[::-1]]
    text = runner.invoke(app, ["runs", "list"]).stdout
    assert ids[0] in text and "finished" in text
    missing = runner.invoke(app, ["runs", "show", "nope"])
    assert missing.exit_code != 0 and "no run 'nope'" in str(missing.exception)


# Vertex AI Experiments at the wire ------------------------------------------------------------


@pytest.fixture
def vertex() -> Iterator[tuple[FakeApi, VertexMetadata]]:
    api = FakeApi().start()
    metadata = VertexMetadata().install(api)
    yield api, metadata
    api.stop()
    assert not api.errors


def _vertex_config(api: FakeApi) -> TrackingConfig:
    return TrackingConfig(backend="vertex", experiment="lead-scoring-test", project="proj", location="europe-west4",
                          api_endpoint=api.url)


def test_a_run_is_logged_to_vertex_experiments(vertex, home: Path, synth_parquet: Path, tmp_path: Path):
    api, metadata = vertex
    config = _vertex_config(api)
    result = train(TrainConfig(data=str(synth_parquet), out=tmp_path / "model", tracking=config),
                   experiment=VertexExperiment(config, credentials=AnonymousCredentials()))
    base = "/v1/projects/proj/locations/europe-west4/metadataStores/default/contexts"
    [experiment] = [r for r in api.calls("POST", base) if r.param("contextId") == "lead-scoring-test"]
    assert experiment.json["schemaTitle"] == "system.Experiment"
    [created] = [r for r in api.calls("POST", base) if r.param("contextId") == f"lead-scoring-test-{result.run_id}"]
    assert created.json["schemaTitle"] == "system.ExperimentRun" and created.json["displayName"] == result.run_id
    [link] = api.calls("POST", base + "/lead-scoring-test:addContextChildren")
    assert link.json["childContexts"][0].endswith(f"/contexts/lead-scoring-test-{result.run_id}")
    run = metadata.runs("lead-scoring-test")[result.run_id]["metadata"]
    assert run["_state"] == "COMPLETE"
    assert run["_metrics"]["rmse"] == pytest.approx(result.metrics["rmse"])
    local = RunStore().get(result.run_id)
    assert run["_params"]["max_depth"] == 6 and run["_params"]["target"] == "conversion_probability"
    assert run["_params"]["data_sha256"] == local.data["fingerprint"]["sha256"]
    assert run["_params"]["artifact_uri"] == str(result.out) and run["_params"]["git_sha"] == local.code["git_sha"]
    assert local.status == "finished"  # the local run log is kept as well


def test_a_failed_run_ends_failed_on_vertex(vertex, home: Path, synth_parquet: Path, tmp_path: Path, monkeypatch):
    api, metadata = vertex
    config = _vertex_config(api)

    def crash(directory):
        raise OSError("disk full")

    monkeypatch.setattr(export, "write_manifest", crash)
    with pytest.raises(OutputError):
        train(TrainConfig(data=str(synth_parquet), out=tmp_path / "model", tracking=config),
              experiment=VertexExperiment(config, credentials=AnonymousCredentials()))
    [run] = metadata.runs("lead-scoring-test").values()
    assert run["metadata"]["_state"] == "FAILED" and run["metadata"]["_metrics"] == {}


def test_vertex_errors_stop_the_run_before_training(home: Path, synth_parquet: Path, tmp_path: Path):
    api = FakeApi().start()  # no metadata routes: every call is a 404
    config = _vertex_config(api)
    try:
        with pytest.raises(Exception, match="Vertex AI Experiments \\(lead-scoring-test\\)"):
            train(TrainConfig(data=str(synth_parquet), out=tmp_path / "model", tracking=config),
                  experiment=VertexExperiment(config, credentials=AnonymousCredentials()))
    finally:
        api.stop()
    assert not (tmp_path / "model").exists()
