"""A bq:// window: Vertex AI's request-response logging table read by the real BigQuery client at the wire.

The fake runs the SQL the client sends (``jobs.query``) on DuckDB after translating it with
sqlglot, so the query the data sources build is executed, not just matched.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest
import sqlglot
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from predictor.prediction_log import PredictionLogConfig, PredictionLogger
from tests.vertex_fake import FakeApi, Request, error
from training.errors import SourceError
from training.monitor.window import load_window
from training.synth import generate_leads

TABLE = "proj.logging_leadscore.request_response_logging"
# The request-response logging table's schema, as Vertex AI creates it.
SCHEMA = [
    {"name": "endpoint", "type": "STRING", "mode": "NULLABLE"},
    {"name": "deployed_model_id", "type": "STRING", "mode": "NULLABLE"},
    {"name": "logging_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "request_id", "type": "NUMERIC", "mode": "NULLABLE"},
    {"name": "request_payload", "type": "STRING", "mode": "REPEATED"},
    {"name": "response_payload", "type": "STRING", "mode": "REPEATED"},
]


LEADS_SCHEMA = [{"name": "lead_id", "type": "STRING", "mode": "NULLABLE"},
                {"name": "company_size", "type": "FLOAT", "mode": "NULLABLE"}]


class BigQueryTables:
    """``jobs.query`` over DuckDB tables shaped like the logging table and a leads table."""

    def __init__(self, rows: list[dict]):
        self.db = duckdb.connect()
        self.db.execute("ATTACH ':memory:' AS proj")
        self.db.execute("CREATE SCHEMA proj.logging_leadscore")
        self.db.execute("CREATE TABLE proj.logging_leadscore.request_response_logging (endpoint VARCHAR, "
                        "deployed_model_id VARCHAR, logging_time TIMESTAMPTZ, request_id DECIMAL(38, 0), "
                        "request_payload VARCHAR[], response_payload VARCHAR[])")
        for row in rows:
            self.db.execute("INSERT INTO proj.logging_leadscore.request_response_logging VALUES (?, ?, ?, ?, ?, ?)",
                            [row[c["name"]] for c in SCHEMA])
        self.db.execute("CREATE TABLE proj.logging_leadscore.leads AS SELECT 'L1' AS lead_id, 120.0 AS company_size")
        self.fields = {f["name"]: f for f in SCHEMA + LEADS_SCHEMA}

    def install(self, api: FakeApi) -> BigQueryTables:
        api.add_route("POST", r"/bigquery/v2/projects/(?P<project>[^/]+)/queries", self.query)
        return self

    def query(self, request: Request, match: re.Match[str]):
        body = request.json
        sql = sqlglot.transpile(body["query"], read="bigquery", write="duckdb")[0]
        try:
            cursor = self.db.execute(sql)
        except duckdb.Error as exc:
            return error(400, str(exc))
        fields = [self.fields[d[0]] for d in cursor.description]
        rows = [{"f": [self._cell(value, field, body) for value, field in zip(row, fields)]}
                for row in cursor.fetchall()]
        return {"kind": "bigquery#queryResponse", "jobComplete": True, "schema": {"fields": fields}, "rows": rows,
                "totalRows": str(len(rows)), "jobReference": {"projectId": match["project"], "jobId": "j1"}}

    @staticmethod
    def _cell(value, field: dict, body: dict) -> dict:
        if field["mode"] == "REPEATED":
            return {"v": [{"v": item} for item in value]}
        if field["type"] == "TIMESTAMP":
            assert body["formatOptions"]["useInt64Timestamp"]
            return {"v": str(int(value.timestamp() * 1_000_000))}
        return {"v": None if value is None else str(value)}


@pytest.fixture
def logged_rows(tmp_path: Path) -> list[dict]:
    """Rows as the real PredictionLogger writes them, given Vertex's NUMERIC ids and two logging days."""
    logger = PredictionLogger(PredictionLogConfig(directory=tmp_path, rate=1.0), endpoint="123",
                              deployed_model_id="456")
    leads = generate_leads(40, seed=8).drop_columns(["conversion_probability"]).to_pylist()
    for i in range(0, 40, 10):
        logger.log({"instances": leads[i:i + 10]}, {"predictions": [0.5] * 10, "model_version": "1.0.0"})
    logger.close()
    rows = [json.loads(line) for line in next(tmp_path.glob("*.jsonl")).read_text().splitlines()]
    for i, row in enumerate(rows):
        row["request_id"] = 1000 + i
        row["logging_time"] = datetime(2026, 11, 1 if i < 2 else 2, 12, tzinfo=timezone.utc)
    return rows


@pytest.fixture
def bigquery_client(logged_rows) -> Iterator[tuple[bigquery.Client, FakeApi]]:
    api = FakeApi().start()
    BigQueryTables(logged_rows).install(api)
    client = bigquery.Client(project="proj", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=api.url))
    yield client, api
    api.stop()


def test_the_logging_table_is_read_with_one_row_per_instance(bigquery_client):
    client, api = bigquery_client
    window = load_window(f"bq://{TABLE}", bigquery_client=client)
    assert window.requests == 4 and window.rows == 40
    assert window.model_versions == {"1.0.0": 40}
    assert window.frame["request_id"].iloc[0] == "1000"
    assert window.frame["logged_prediction"].eq(0.5).all()
    [sent] = api.calls("POST", r".*/queries")
    assert "`proj`.`logging_leadscore`.`request_response_logging`" in sent.json["query"]


def test_since_is_pushed_into_the_query(bigquery_client):
    client, api = bigquery_client
    window = load_window(f"bq://{TABLE}", since=datetime(2026, 11, 2, tzinfo=timezone.utc), bigquery_client=client)
    assert window.requests == 2 and window.rows == 20
    [sent] = api.calls("POST", r".*/queries")
    assert "WHERE `logging_time` >= TIMESTAMP '2026-11-02 00:00:00+00:00'" in sent.json["query"]


def test_other_tables_are_leads_and_errors_name_the_table(bigquery_client):
    client, _ = bigquery_client
    window = load_window("bq://proj.logging_leadscore.leads", bigquery_client=client)
    assert window.frame.to_dict("records") == [{"lead_id": "L1", "company_size": 120.0}] and window.requests == 0
    with pytest.raises(SourceError, match="gone"):
        load_window("bq://proj.logging_leadscore.gone", bigquery_client=client)
    with pytest.raises(SourceError, match="expected bq://project.dataset.table"):
        load_window("bq://just-a-table", bigquery_client=client)
