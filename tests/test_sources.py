"""Sources: one BigQuery-SQL ingestion query, run on DuckDB locally and on BigQuery at the wire."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from tests.bigquery_fake import BigQueryTables
from tests.vertex_fake import FakeApi
from training.errors import DataError, SourceError
from training.sources import IngestOptions, Window, build_query, ingest, parse_source, to_duckdb
from training.synth import generate_leads, write_table
from training.train import TrainConfig, train

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _leads(rows: int) -> pa.Table:
    """Synthetic leads with an hourly ``created_at`` timestamp and a nullable boolean."""
    table = generate_leads(rows, seed=11)
    table = table.append_column("created_at", pa.array([START + timedelta(hours=i) for i in range(rows)],
                                                         pa.timestamp("us", tz="UTC")))
    return table.append_column("opted_in", pa.array([None if i % 7 == 0 else i % 3 == 0 for i in range(rows)]))


@pytest.fixture(scope="module")
def leads() -> pa.Table:
    return _leads(3000)


@pytest.fixture(scope="module")
def duckdb_file(tmp_path_factory: pytest.TempPathFactory, leads: pa.Table) -> Path:
    path = tmp_path_factory.mktemp("db") / "crm.db"
    con = duckdb.connect(str(path))
    con.register("incoming", leads)
    con.execute("CREATE TABLE leads AS SELECT * FROM incoming")
    con.close()
    return path


def test_the_query_is_bigquery_sql_with_sampling_window_and_columns():
    source = parse_source("bq://my-project.crm.leads")
    options = IngestOptions(columns=("company_size", "lead `quality`"), sample_percent=12.5,
                            window=Window("created_at", datetime(2026, 1, 1), datetime(2026, 2, 1, tzinfo=timezone.utc)))
    assert build_query(source, options) == (
        "SELECT `company_size`, `lead \\`quality\\`` FROM `my-project`.`crm`.`leads` "
        "TABLESAMPLE SYSTEM (12.5 PERCENT) "
        "WHERE `created_at` >= TIMESTAMP '2026-01-01 00:00:00+00:00' "
        "AND `created_at` < TIMESTAMP '2026-02-01 00:00:00+00:00'"
    )
    assert "RAND()" not in build_query(source, IngestOptions(sample_percent=1))
    assert build_query(source) == "SELECT * FROM `my-project`.`crm`.`leads`"


def test_window_and_columns_run_on_duckdb(duckdb_file: Path, leads: pa.Table):
    options = IngestOptions(columns=("company_size", "created_at"),
                            window=Window("created_at", START + timedelta(hours=100), START + timedelta(hours=350)))
    table = ingest(f"duckdb:///{duckdb_file}?table=leads".replace(":///", ":////"), options)
    assert table.column_names == ["company_size", "created_at"]
    assert table.num_rows == 250
    assert pc.min(table["created_at"]).as_py() == START + timedelta(hours=100)
    assert table["company_size"].equals(leads["company_size"].slice(100, 250))


def test_sampling_reads_part_of_the_table(tmp_path: Path):
    path = write_table(generate_leads(200_000, seed=1), tmp_path / "big.parquet")
    sampled = ingest(path, IngestOptions(sample_percent=10)).num_rows
    # SYSTEM sampling keeps whole vectors of 2,048 rows, each with probability 10 %.
    assert 0 < sampled < 100_000
    assert sampled % 2048 in (0, 200_000 % 2048)  # whole vectors (the last one is shorter)


def test_csv_parquet_and_duckdb_read_the_same_rows(tmp_path: Path, duckdb_file: Path, leads: pa.Table):
    subset = leads.drop_columns(["created_at"])
    csv = write_table(subset, tmp_path / "leads.csv")
    parquet = write_table(subset, tmp_path / "leads.parquet")
    from_db = ingest(f"duckdb:////{duckdb_file}?table=leads").drop_columns(["created_at"])
    for table in (ingest(csv), ingest(parquet)):
        assert table.column_names == from_db.column_names
        for name in ("company_size", "industry", "pages_visited", "opted_in"):
            assert table[name].to_pylist() == from_db[name].to_pylist()


def test_relative_duckdb_path_follows_sqlalchemy(tmp_path: Path, duckdb_file: Path, monkeypatch):
    monkeypatch.chdir(duckdb_file.parent)
    assert ingest("duckdb:///crm.db?table=leads").num_rows == 3000
    assert parse_source("duckdb:////abs/crm.db?table=leads").path == Path("/abs/crm.db")


@pytest.mark.parametrize(("uri", "message"), [
    ("bq://project.table", "expected bq://project.dataset.table"),
    ("duckdb:///crm.db", r"expected duckdb:///path/to/file.db\?table=NAME"),
    ("s3://bucket/leads.csv", "unsupported source"),
    ("leads.xlsx", "unsupported file type '.xlsx'"),
    ("no/such/file.parquet", "no such file"),
])
def test_bad_sources_name_the_problem(uri: str, message: str):
    with pytest.raises(SourceError, match=message):
        ingest(uri)


def test_duplicate_column_names_are_refused_although_duckdb_would_rename_them(tmp_path: Path):
    csv = tmp_path / "dup.csv"
    csv.write_text("a,b,a,y\n1,2,3,0.5\n")
    with pytest.raises(DataError, match="duplicate column names: a"):
        ingest(csv)
    pq.write_table(pa.table([pa.array([1]), pa.array([2]), pa.array([0.5])], names=["b", "b", "y"]),
                   tmp_path / "dup.parquet")
    with pytest.raises(DataError, match="duplicate column names: b"):
        ingest(tmp_path / "dup.parquet")
    assert duckdb.sql(f"SELECT * FROM read_csv('{csv}')").columns == ["a", "b", "a_1", "y"]


def test_sqlglot_translation_is_what_duckdb_runs():
    sql = build_query(parse_source("bq://p.d.t"), IngestOptions(sample_percent=5, window=Window("ts", START)))
    assert to_duckdb(sql) == ('SELECT * FROM "p"."d"."t" TABLESAMPLE SYSTEM (5 PERCENT) '
                              "WHERE \"ts\" >= CAST('2026-01-01 00:00:00+00:00' AS TIMESTAMPTZ)")


# BigQuery at the wire -----------------------------------------------------------------------


@pytest.fixture
def bigquery_api(leads: pa.Table) -> Iterator[tuple[bigquery.Client, FakeApi, BigQueryTables]]:
    api = FakeApi().start()
    tables = BigQueryTables(page_rows=700).add_table("proj.crm.leads", leads).install(api)
    client = bigquery.Client(project="proj", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=api.url))
    yield client, api, tables
    api.stop()
    assert not api.errors


def test_bigquery_rows_arrive_as_arrow_through_the_rest_pages(bigquery_api, duckdb_file: Path):
    client, api, _ = bigquery_api
    options = IngestOptions(window=Window("created_at", START + timedelta(hours=500)))
    table = ingest("bq://proj.crm.leads", options, bigquery_client=client)
    local = ingest(f"duckdb:////{duckdb_file}?table=leads", options)
    assert table.num_rows == local.num_rows == 2500
    # INT64, FLOAT64, STRING, BOOL and TIMESTAMP map to the same Arrow types (DuckDB names UTC "Etc/UTC").
    for got, want in zip(table.schema, local.schema, strict=True):
        assert got.name == want.name
        assert got.type == want.type or (got.type, want.type.tz) == (pa.timestamp("us", tz="UTC"), "Etc/UTC")
    assert table.equals(local.cast(table.schema))
    [sent] = api.calls("POST", r".*/projects/proj/queries")
    assert sent.json["query"] == build_query(parse_source("bq://proj.crm.leads"), options)
    assert sent.json["useLegacySql"] is False and sent.json["labels"] == {"application": "leadscore"}
    # 2,500 rows in pages of 700: the first came with jobs.query, three more from getQueryResults.
    assert len(api.calls("GET", r".*/queries/job_1")) == 3


def test_bigquery_sampling_is_pushed_into_the_query(bigquery_api):
    client, api, _ = bigquery_api
    ingest("bq://proj.crm.leads", IngestOptions(columns=("company_size",), sample_percent=10), bigquery_client=client)
    [sent] = api.calls("POST", r".*/queries")
    assert sent.json["query"] == "SELECT `company_size` FROM `proj`.`crm`.`leads` TABLESAMPLE SYSTEM (10 PERCENT)"


def test_bigquery_errors_name_the_source(bigquery_api):
    client, _, _ = bigquery_api
    with pytest.raises(SourceError, match=r"bq://proj\.crm\.gone: .*Query error"):
        ingest("bq://proj.crm.gone", bigquery_client=client)


def test_training_from_bigquery(bigquery_api, tmp_path: Path):
    client, api, _ = bigquery_api
    result = train(TrainConfig(data="bq://proj.crm.leads", out=tmp_path / "model"), bigquery_client=client)
    assert result.rows_train + result.rows_test == 3000
    assert result.metrics["r2"] > 0.5
    assert "created_at" in result.spec.dropped and result.spec.boolean == ["opted_in"]
    assert len(api.calls("POST", r".*/queries")) == 1
