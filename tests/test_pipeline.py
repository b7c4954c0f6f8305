"""The KFP v2 pipeline and the main job: compiled YAML, kfp.local runs, the local engine, Vertex AI at the wire."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from google.auth.credentials import AnonymousCredentials
from kfp.components import load_component_from_file
from typer.testing import CliRunner

from tests.vertex_fake import FakeApi
from training.cli import app
from training.config import LeadscoreConfig, load_config
from training.errors import DataError, PipelineError
from training.job import compile_pipeline, data_version, pipeline_parameters, run_job, schedule_vertex, submit_vertex
from training.registry import open_registry
from training.steps import split_step, xgb_params
from training.synth import generate_leads, write_table

STEPS = ["ingest", "validate", "preprocess", "train", "evaluate", "register", "deploy"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEADSCORE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _small(config: LeadscoreConfig | None = None, rows: int = 2_000, seed: int = 3) -> LeadscoreConfig:
    config = config or LeadscoreConfig()
    config.pipeline.synth_rows, config.pipeline.synth_seed = rows, seed
    config.train.hyperparameters.n_estimators = 30
    return config


# Compilation ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pipeline(tmp_path_factory.mktemp("yaml") / "lead_scoring_pipeline.yaml",
                            training_image="europe-docker.pkg.dev/p/leadscore/training:9.9.9")


def test_compiled_yaml_has_every_component_and_the_training_image(compiled: Path):
    spec = yaml.safe_load(compiled.read_text())
    executors = spec["deploymentSpec"]["executors"]
    assert {f"exec-{step}" for step in STEPS} == set(executors)
    for executor in executors.values():
        container = executor["container"]
        assert container["image"] == "europe-docker.pkg.dev/p/leadscore/training:9.9.9"
        assert "pip install" not in " ".join(container["command"])  # nothing installed at run time


def test_compiled_yaml_parameter_defaults_and_caching(compiled: Path):
    spec = yaml.safe_load(compiled.read_text())
    parameters = spec["root"]["inputDefinitions"]["parameters"]
    assert parameters["target"]["defaultValue"] == "conversion_probability"
    assert parameters["test_size"]["defaultValue"] == 0.2
    assert parameters["random_state"]["defaultValue"] == 42
    assert parameters["endpoint"]["defaultValue"] == ""
    assert parameters["min_improvement"]["defaultValue"] == 0.0
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["register"]["cachingOptions"] == {}  # registration always runs
    assert tasks["train"]["cachingOptions"] == {"enableCache": True}
    deploy = spec["components"]["comp-condition-1"]["dag"]["tasks"]["deploy"]
    assert deploy["cachingOptions"] == {}
    condition = tasks["condition-1"]["triggerPolicy"]["condition"]
    assert "register-Output" in condition and "true" in condition


def test_compiled_yaml_loads_back(compiled: Path):
    component = load_component_from_file(str(compiled))
    assert component.name == "lead-scoring"
    assert {"source", "target", "hyperparameters", "tune_trials", "registry"} <= set(component.component_spec.inputs)


def test_cli_compile(tmp_path: Path):
    out = tmp_path / "p.yaml"
    result = CliRunner().invoke(app, ["pipeline", "compile", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(out.read_text())["pipelineInfo"]["name"] == "lead-scoring"


# Steps and parameters ------------------------------------------------------------------------


def test_split_step_is_the_seeds_split_of_labelled_rows(tmp_path: Path):
    table = generate_leads(1_000, seed=1).to_pandas()
    table.loc[:9, "conversion_probability"] = None
    write_table(__import__("pyarrow").Table.from_pandas(table, preserve_index=False), tmp_path / "all.parquet")
    train_rows, test_rows = split_step(tmp_path / "all.parquet", tmp_path / "train.parquet",
                                       tmp_path / "test.parquet", "conversion_probability")
    assert (train_rows, test_rows) == (792, 198)
    train_ids = set(pq.read_table(tmp_path / "train.parquet")["lead_id"].to_pylist())
    test_ids = set(pq.read_table(tmp_path / "test.parquet")["lead_id"].to_pylist())
    assert not train_ids & test_ids and len(train_ids | test_ids) == 990


def test_hyperparameters_survive_kfp_json_numbers():
    params = xgb_params({"n_estimators": 50.0, "max_depth": 4.0, "learning_rate": 0.05})
    assert (params.n_estimators, params.max_depth, params.learning_rate) == (50, 4, 0.05)
    assert isinstance(params.n_estimators, int)
    with pytest.raises(DataError, match="unknown hyperparameter"):
        xgb_params({"depth": 3})


def test_data_version_changes_with_the_data(tmp_path: Path):
    path = write_table(generate_leads(100, seed=1), tmp_path / "a.parquet")
    before = data_version(str(path), 0, 0)
    write_table(generate_leads(120, seed=1), path)
    assert data_version(str(path), 0, 0) != before
    assert data_version(None, 100, 1) == data_version(None, 100, 1) != data_version(None, 100, 2)
    assert data_version("bq://p.d.t", 0, 0).startswith("table:")


def test_config_file_sections(tmp_path: Path):
    path = tmp_path / "leadscore.toml"
    path.write_text('[data]\ntarget = "Converted"\nexclude = ["Tags"]\n'
                    '[registry]\nmin_improvement = 0.01\nrequire_significance = true\n'
                    '[serving]\nendpoint = "leads"\ntraffic = 20\n[pipeline]\nengine = "kfp-local"\n')
    config = load_config(path)
    parameters = pipeline_parameters(config)
    assert parameters["target"] == "Converted" and parameters["exclude"] == ["Tags"]
    assert parameters["min_improvement"] == 0.01 and parameters["require_significance"] is True
    assert (parameters["endpoint"], parameters["traffic"]) == ("leads", 20)
    assert config.pipeline.engine == "kfp-local"


# The local engine ----------------------------------------------------------------------------


def test_local_engine_registers_a_champion_then_decides_with_both_rmses(home: Path):
    first = run_job(_small(), "local")
    assert first.rows == 2_000 and first.decision["promoted"] is True
    assert first.decision["version"]["version"] == "1.0.0"
    second = run_job(_small(seed=4), "local")
    event = second.decision["event"]
    assert event["previous_champion"] == "1.0.0"
    assert event["champion_rmse"] is not None and event["challenger_rmse"] is not None
    assert event["rows"] == 400  # both scored on the challenger's held-out rows
    versions = [v.version for v in open_registry().versions("lead-scoring")]
    assert len(versions) == 2 and "1.0.0" in versions


def test_cli_run_json(home: Path):
    result = CliRunner().invoke(app, ["run", "--synth-rows", "1500", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout[result.stdout.index("{"):])
    assert summary["engine"] == "local" and summary["metrics"]["rmse"] > 0
    assert summary["decision"]["event"]["reason"] == "first model: no champion yet"


@pytest.fixture
def no_target_config(tmp_path: Path) -> LeadscoreConfig:
    """A job whose source lacks the target column: validation must stop it."""
    source = write_table(generate_leads(500, seed=1).drop_columns(["conversion_probability"]),
                         tmp_path / "no-target.parquet")
    config = _small()
    config.data.source = str(source)
    return config


def test_bad_data_stops_the_local_engine_before_registration(home: Path, no_target_config: LeadscoreConfig):
    config = no_target_config
    with pytest.raises(DataError, match="target column 'conversion_probability' not found"):
        run_job(config, "local")
    assert open_registry().versions() == []


# kfp.local -----------------------------------------------------------------------------------


def test_kfp_local_runs_the_dag_registers_and_caches(home: Path, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.INFO)
    first = run_job(_small(), "kfp-local")
    assert first.decision["promoted"] is True and first.decision["version"]["version"] == "1.0.0"
    assert Path(first.artifact_uri).is_dir()
    caplog.clear()
    second = run_job(_small(), "kfp-local")
    hits = {record.getMessage().split()[1] for record in caplog.records if "cache hit" in record.getMessage()}
    assert hits == {"ingest", "validate", "preprocess", "train", "evaluate"}
    # Registration is never cached: the same model again is registered and rejected (not better).
    assert second.decision["promoted"] is False
    assert second.decision["event"]["champion_rmse"] == pytest.approx(second.decision["event"]["challenger_rmse"])


def test_kfp_local_failed_validation_registers_nothing(home: Path, no_target_config: LeadscoreConfig):
    config = no_target_config
    with pytest.raises(PipelineError, match="Inner task failed: .*validate"):
        run_job(config, "kfp-local")
    assert open_registry().versions() == []


# Vertex AI at the wire -----------------------------------------------------------------------


@pytest.fixture
def vertex_api(monkeypatch: pytest.MonkeyPatch):
    api = FakeApi().start()
    # The SDK's best-effort check of the pipeline root's bucket goes through google-cloud-storage:
    # send it to the fake, where the bucket is unknown, so the check ends at once (an existing
    # bucket would make it ask Resource Manager for the project number, out of the fake's reach).
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", api.url)
    parent = r"/v1/projects/p/locations/us-central1"
    api.add_route("POST", parent + r"/pipelineJobs", lambda request, match: {
        **request.json, "name": f"projects/p/locations/us-central1/pipelineJobs/{request.param('pipelineJobId')}",
        "state": "PIPELINE_STATE_PENDING"})
    api.add_route("POST", parent + r"/schedules", lambda request, match: {
        **request.json, "name": "projects/p/locations/us-central1/schedules/7", "state": "ACTIVE"})
    yield api
    api.stop()


def _vertex_config() -> LeadscoreConfig:
    config = LeadscoreConfig()
    config.cloud.project, config.cloud.service_account = "p", "pipelines@p.iam.gserviceaccount.com"
    config.pipeline.root = "gs://bucket/pipeline-root"
    config.registry.backend, config.registry.uri = "vertex", "gs://bucket/registry"
    config.serving.image = "us-central1-docker.pkg.dev/p/leadscore/serving:1.0.0"
    config.data.source = "bq://p.crm.leads"
    return config


def test_vertex_engine_submits_a_pipeline_job(vertex_api: FakeApi):
    summary = submit_vertex(_vertex_config(), credentials=AnonymousCredentials(), api_endpoint=vertex_api.url)
    assert summary.pipeline_job.startswith("projects/p/locations/us-central1/pipelineJobs/lead-scoring-")
    (request,) = vertex_api.calls("POST", r".*/pipelineJobs")
    job = request.json
    assert job["serviceAccount"] == "pipelines@p.iam.gserviceaccount.com"
    runtime = job["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://bucket/pipeline-root"
    values = runtime["parameterValues"]
    assert values["source"] == "bq://p.crm.leads" and values["home"] == ""
    assert values["registry"]["backend"] == "vertex" and values["registry"]["registry_uri"] == "gs://bucket/registry"
    tasks = job["pipelineSpec"]["root"]["dag"]["tasks"]
    assert tasks["train"]["cachingOptions"] == {"enableCache": True}  # caching on
    assert "enableCache" not in tasks["register"]["cachingOptions"]


def test_vertex_engine_needs_the_vertex_registry():
    config = _vertex_config()
    config.registry.backend = "local"
    with pytest.raises(Exception, match="registry must be Vertex AI's"):
        submit_vertex(config, credentials=AnonymousCredentials())


def test_pipeline_schedule_is_created_at_the_wire(vertex_api: FakeApi):
    name = schedule_vertex(_vertex_config(), "0 3 * * *", credentials=AnonymousCredentials(),
                           api_endpoint=vertex_api.url)
    assert name == "projects/p/locations/us-central1/schedules/7"
    (request,) = vertex_api.calls("POST", r".*/schedules")
    schedule = request.json
    assert schedule["cron"] == "0 3 * * *"
    assert schedule["createPipelineJobRequest"]["pipelineJob"]["runtimeConfig"]["gcsOutputDirectory"] == (
        "gs://bucket/pipeline-root")


def test_monitor_retrain_action_runs_the_main_job(home: Path):
    """``leadscore monitor drift --on-drift retrain`` starts ``leadscore run``: the default command, for real."""
    import os

    from training.monitor.actions import start_retrain

    result = start_retrain("drift", {"features": {"industry": 0.4}})
    assert result.ok, result.summary
    _, status = os.waitpid(result.details["pid"], 0)
    log = Path(result.details["log"]).read_text()
    assert os.waitstatus_to_exitcode(status) == 0, log
    assert "first model: no champion yet" in log
    assert open_registry().resolve("lead-scoring@champion").version == "1.0.0"
