"""A bq:// window: Vertex AI's request-response logging table read by the real BigQuery client at the wire
(tests/bigquery_fake.py runs the query the data sources build on DuckDB)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from predictor.prediction_log import PredictionLogConfig, PredictionLogger
from tests.bigquery_fake import BigQueryTables
from tests.vertex_fake import FakeApi
from training.errors import SourceError
from training.monitor.window import load_window
from training.synth import generate_leads

TABLE = "proj.logging_leadscore.request_response_logging"


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
    # The logging table's schema, as Vertex AI creates it: NUMERIC ids, REPEATED STRING payloads.
    schema = pa.schema([("endpoint", pa.string()), ("deployed_model_id", pa.string()),
                        ("logging_time", pa.timestamp("us", tz="UTC")), ("request_id", pa.decimal128(38, 0)),
                        ("request_payload", pa.list_(pa.string())), ("response_payload", pa.list_(pa.string()))])
    rows = [{**row, "request_id": Decimal(row["request_id"])} for row in logged_rows]
    tables = BigQueryTables()
    tables.add_table(TABLE, pa.Table.from_pylist(rows, schema=schema))
    tables.add_table("proj.logging_leadscore.leads", pa.table({"lead_id": ["L1"], "company_size": [120.0]}))
    api = FakeApi().start()
    tables.install(api)
    client = bigquery.Client(project="proj", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=api.url))
    yield client, api
    api.stop()
    assert api.errors == []


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
