"""Local batch prediction: every row scored as online serving would, or kept as an error row."""

from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from typer.testing import CliRunner

from predictor.model import LeadScoringModel
from tests.bigquery_fake import BigQueryTables
from tests.conftest import XEDU_CSV
from tests.vertex_fake import FakeApi
from training.batch import BatchError, batch_predict
from training.cli import app
from training.errors import LeadscoreError
from training.sources import read_table
from training.synth import EXAMPLE_LEAD


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _online(model_dir: Path, records: list[dict]) -> np.ndarray:
    """What the online request path answers for these instances."""
    return LeadScoringModel.load(model_dir).predict_instances(records)


def test_parquet_to_jsonl_keeps_every_row_in_order_and_matches_online_scoring(synth_model: Path,
                                                                             synth_parquet: Path, tmp_path: Path):
    seen: list[tuple[int, int | None]] = []
    result = batch_predict(str(synth_model), str(synth_parquet), tmp_path / "out.jsonl", chunk_rows=700,
                           progress=lambda done, total: seen.append((done, total)))
    rows = _jsonl(tmp_path / "out.jsonl")
    table = pq.read_table(synth_parquet).to_pylist()
    assert result.rows == len(rows) == len(table) == 5_000 and result.errors == 0
    assert [r["instance"] for r in rows] == [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in table
    ]
    assert np.allclose([r["prediction"] for r in rows], _online(synth_model, table), atol=1e-6)
    assert [done for done, _ in seen] == [min(700 * k, 5_000) for k in range(1, 9)]  # 8 chunks, bounded
    assert {total for _, total in seen} == {5_000}


def test_parquet_output_holds_the_input_columns_plus_prediction_and_error(synth_model: Path, synth_parquet: Path,
                                                                          tmp_path: Path):
    batch_predict(str(synth_model), str(synth_parquet), tmp_path / "out.parquet", chunk_rows=1_000)
    out = pq.read_table(tmp_path / "out.parquet")
    source = pq.read_table(synth_parquet)
    assert out.column_names == source.column_names + ["prediction", "error"]
    assert out.select(source.column_names).equals(source)
    assert out.column("error").null_count == out.num_rows
    assert np.allclose(out.column("prediction").to_numpy(), _online(synth_model, source.to_pylist()), atol=1e-6)


def test_real_csv_with_a_bad_value_scores_every_other_row(xedu_model: Path, tmp_path: Path):
    """X Education as CSV, one TotalVisits spoiled: that row is an error row, the rest match online scoring."""
    lines = XEDU_CSV.read_text().splitlines()
    header = lines[0].split(",")
    column = header.index("TotalVisits")
    cells = lines[5000].split(",")
    assert cells[column].replace(".", "").isdigit()
    cells[column] = "n/a"
    lines[5000] = ",".join(cells)
    spoiled = tmp_path / "leads.csv"
    spoiled.write_text("\n".join(lines) + "\n")

    result = batch_predict(str(xedu_model), str(spoiled), tmp_path / "out.jsonl", chunk_rows=2_000)
    rows = _jsonl(tmp_path / "out.jsonl")
    assert result.rows == len(rows) == 9_237 and result.errors == 1
    bad = rows[4_999]  # data line 5000 is row 4,999
    assert set(bad) == {"instance", "error"}
    assert bad["error"].startswith("TotalVisits:") and "'n/a'" in bad["error"]
    assert bad["instance"]["Prospect ID"] == cells[header.index("Prospect ID")]

    features = LeadScoringModel.load(xedu_model).transform.feature_names
    records = json.loads(read_table(XEDU_CSV)[features].to_json(orient="records"))
    expected = _online(xedu_model, records)
    scored = [i for i in range(len(rows)) if i != 4_999]
    assert np.allclose([rows[i]["prediction"] for i in scored], expected[scored], atol=1e-6)


def test_jsonl_rows_get_the_online_checks_and_bad_rows_become_error_rows(synth_model: Path, tmp_path: Path):
    good = [EXAMPLE_LEAD, EXAMPLE_LEAD | {"industry": None, "pages_visited": 40}, {"company_size": 12}]
    lines = [json.dumps(good[0]), json.dumps(EXAMPLE_LEAD | {"pages_visited": "many"}), "{not json",
             json.dumps(good[1]), "[1, 2]", json.dumps(EXAMPLE_LEAD | {"time_on_site": float("inf")}),
             "", json.dumps(good[2])]
    source = tmp_path / "leads.jsonl"
    source.write_text("\n".join(lines) + "\n")
    result = batch_predict(str(synth_model), str(source), tmp_path / "out.jsonl")
    rows = _jsonl(tmp_path / "out.jsonl")
    assert result.rows == len(rows) == 7 and result.errors == 4  # the blank line is not a row
    assert rows[1] == {"instance": EXAMPLE_LEAD | {"pages_visited": "many"},
                       "error": "pages_visited: expected a number, got a string"}
    assert rows[2]["instance"] == "{not json" and rows[2]["error"].startswith("not valid JSON: line 3")
    assert rows[4] == {"instance": [1, 2], "error": "expected an object keyed by feature name, got an array"}
    assert rows[5]["error"] == "time_on_site: expected a finite number, got inf"
    scores = [rows[i]["prediction"] for i in (0, 3, 6)]
    assert np.allclose(scores, _online(synth_model, good), atol=1e-6)


def test_non_finite_numbers_in_typed_columns_are_error_rows(synth_model: Path, synth_parquet: Path,
                                                            tmp_path: Path):
    table = pq.read_table(synth_parquet).slice(0, 50)
    time_on_site = table.column("time_on_site").to_numpy(zero_copy_only=False).copy()
    time_on_site[7] = np.inf
    table = table.set_column(table.column_names.index("time_on_site"), "time_on_site", pa.array(time_on_site))
    pq.write_table(table, tmp_path / "in.parquet")
    result = batch_predict(str(synth_model), str(tmp_path / "in.parquet"), tmp_path / "out.jsonl")
    rows = _jsonl(tmp_path / "out.jsonl")
    assert result.errors == 1 and len(rows) == 50
    assert rows[7]["error"] == "time_on_site: expected a finite number"
    assert rows[7]["instance"]["time_on_site"] is None  # JSON has no Infinity
    assert all("prediction" in rows[i] for i in range(50) if i != 7)


def test_bigquery_source_is_read_page_by_page_at_the_wire(synth_model: Path, synth_parquet: Path, tmp_path: Path):
    """``bq://`` through the data sources: the real BigQuery client against the DuckDB-backed query fake."""
    leads = pq.read_table(synth_parquet).slice(0, 2_000)
    api = FakeApi().start()
    try:
        BigQueryTables().add_table("proj.crm.new_leads", leads).install(api)
        client = bigquery.Client(project="proj", credentials=AnonymousCredentials(),
                                 client_options=ClientOptions(api_endpoint=api.url))
        result = batch_predict(str(synth_model), "bq://proj.crm.new_leads", tmp_path / "out.parquet",
                               chunk_rows=600, bigquery_client=client)
        pages = api.calls("GET", r".*/queries/job_1")
        assert not api.errors
    finally:
        api.stop()
    assert result.rows == 2_000 and result.errors == 0
    assert len(pages) == 3  # 2,000 rows in pages of 600: one with jobs.query, three from getQueryResults
    out = pq.read_table(tmp_path / "out.parquet")
    assert out.column("lead_id").to_pylist() == leads.column("lead_id").to_pylist()
    assert np.allclose(out.column("prediction").to_numpy(), _online(synth_model, leads.to_pylist()), atol=1e-6)


def test_duckdb_source(synth_model: Path, synth_parquet: Path, tmp_path: Path):
    database = tmp_path / "crm.db"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE leads AS SELECT * FROM read_parquet(?)", [str(synth_parquet)])
    result = batch_predict(str(synth_model), f"duckdb:///{database}?table=leads", tmp_path / "out.jsonl")
    rows = _jsonl(tmp_path / "out.jsonl")
    assert result.rows == len(rows) == 5_000
    expected = _online(synth_model, pq.read_table(synth_parquet).to_pylist())
    assert np.allclose([r["prediction"] for r in rows], expected, atol=1e-6)


def test_missing_feature_column_stops_before_writing(synth_model: Path, synth_parquet: Path, tmp_path: Path):
    pq.write_table(pq.read_table(synth_parquet).drop_columns(["industry"]), tmp_path / "in.parquet")
    with pytest.raises(BatchError, match="no column for feature.*industry"):
        batch_predict(str(synth_model), str(tmp_path / "in.parquet"), tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]  # no output, no temporary file


@pytest.mark.parametrize(("source", "output", "needle"), [
    ("leads.xlsx", "out.jsonl", "unsupported input type"),
    ("missing.parquet", "out.jsonl", "no such file"),
    ("duckdb:///nowhere.db", "out.jsonl", "expected duckdb:"),
    ("missing.jsonl", "out.jsonl", "no such file"),
    ("leads.parquet", "out.txt", "unsupported output type"),
])
def test_bad_paths_are_clear_errors(synth_model: Path, synth_parquet: Path, tmp_path: Path, source, output, needle):
    if source == "leads.parquet":
        source = str(synth_parquet)
    elif "://" not in source:
        (tmp_path / "leads.xlsx").write_text("x")
        source = str(tmp_path / source)
    with pytest.raises(LeadscoreError, match=needle):  # BatchError, or the data sources' SourceError
        batch_predict(str(synth_model), source, tmp_path / output)


def test_cli_batch_predict(synth_model: Path, synth_parquet: Path, tmp_path: Path):
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(app, ["batch-predict", "--model", str(synth_model), "--input", str(synth_parquet),
                                      "--output", str(out), "--chunk-rows", "2000", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows"] == 5_000 and summary["errors"] == 0 and summary["output"] == str(out)
    assert pq.read_metadata(out).num_rows == 5_000
