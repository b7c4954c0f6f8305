"""A fake of BigQuery's query REST API that really runs the SQL it is sent, on DuckDB.

:class:`BigQueryTables` installs ``jobs.query`` (``POST .../queries``), ``jobs.getQueryResults``
(``GET .../queries/JOB``) and ``jobs.get`` (``GET .../jobs/JOB``) on a :class:`tests.vertex_fake.FakeApi`.
A query is translated from BigQuery SQL to DuckDB with sqlglot and run on tables registered as
``project.dataset.table``; results come back in BigQuery's JSON row format
(``{"f": [{"v": "1"}, ...]}``; ARRAY columns as REPEATED fields, DECIMAL as NUMERIC), in pages of ``page_rows`` with page tokens, so the client's
paging (and its Arrow conversion of REST rows) is exercised.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot

from tests.vertex_fake import FakeApi, Request, error

_TYPES = {"BIGINT": "INTEGER", "INTEGER": "INTEGER", "DOUBLE": "FLOAT", "FLOAT": "FLOAT", "VARCHAR": "STRING",
          "BOOLEAN": "BOOLEAN", "TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "TIMESTAMP": "DATETIME", "DATE": "DATE"}


def _field(name: str, duckdb_type: Any) -> dict[str, str]:
    """A BigQuery schema field for a DuckDB column: ``X[]`` is a REPEATED X, ``DECIMAL`` is NUMERIC."""
    text = str(duckdb_type)
    repeated = text.endswith("[]")
    text = text.removesuffix("[]")
    kind = "NUMERIC" if text.startswith("DECIMAL") else _TYPES.get(text, "STRING")
    return {"name": name, "type": kind, "mode": "REPEATED" if repeated else "NULLABLE"}


def _cell(value: Any, kind: str, mode: str = "NULLABLE") -> dict[str, Any]:
    if mode == "REPEATED":  # an ARRAY column: a list of cells
        return {"v": [_cell(item, kind) for item in value or []]}
    if value is None:
        return {"v": None}
    if kind == "BOOLEAN":
        return {"v": "true" if value else "false"}
    if kind == "TIMESTAMP":  # the client asks for int64 microseconds (formatOptions.useInt64Timestamp)
        return {"v": str(round(value.timestamp() * 1_000_000))}
    if kind in ("DATETIME", "DATE"):
        return {"v": value.isoformat()}
    return {"v": repr(value) if isinstance(value, float) else str(value)}


@dataclass
class BigQueryTables:
    """Tables queried through the fake, and the queries it ran.

    Attributes:
        page_rows: Rows per result page.
        results: Job ID → (schema fields, rows) of every query run.
    """

    page_rows: int = 1000
    results: dict[str, tuple[list[dict[str, str]], list[dict[str, Any]]]] = field(default_factory=dict)
    _db: duckdb.DuckDBPyConnection = field(default_factory=duckdb.connect)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def add_table(self, table_id: str, data: pa.Table) -> BigQueryTables:
        """Registers ``data`` as the table ``project.dataset.table``."""
        project, dataset, table = table_id.split(".")
        databases = {row[0] for row in self._db.execute("SELECT database_name FROM duckdb_databases()").fetchall()}
        if project not in databases:
            self._db.execute(f'ATTACH \':memory:\' AS "{project}"')
        self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{project}"."{dataset}"')
        self._db.register("incoming", data)
        self._db.execute(f'CREATE TABLE "{project}"."{dataset}"."{table}" AS SELECT * FROM incoming')
        self._db.unregister("incoming")
        return self

    def install(self, api: FakeApi) -> BigQueryTables:
        """Adds the query routes to ``api``; returns self."""
        project = r"/bigquery/v2/projects/(?P<project>[^/]+)"
        api.add_route("POST", project + r"/queries", self.query)
        api.add_route("GET", project + r"/queries/(?P<job>[^/]+)", self.get_query_results)
        api.add_route("GET", project + r"/jobs/(?P<job>[^/]+)", self.get_job)
        return self

    def query(self, request: Request, match: re.Match[str]) -> Any:
        body = request.json
        assert body.get("useLegacySql") is False, "queries must use GoogleSQL"
        try:
            cursor = self._db.execute(sqlglot.transpile(body["query"], read="bigquery", write="duckdb")[0])
        except duckdb.Error as exc:
            return error(400, f"Query error: {exc}")
        fields = [_field(d[0], d[1]) for d in cursor.description]
        rows = [{"f": [_cell(v, f["type"], f["mode"]) for v, f in zip(row, fields)]} for row in cursor.fetchall()]
        job = f"job_{next(self._ids)}"
        self.results[job] = (fields, rows)
        return self._page(match["project"], job, 0, int(body.get("maxResults") or self.page_rows),
                          kind="bigquery#queryResponse")

    def get_query_results(self, request: Request, match: re.Match[str]) -> Any:
        if match["job"] not in self.results:
            return error(404, f"Not found: Job {match['project']}:{match['job']}")
        start = int(request.param("pageToken") or request.param("startIndex") or 0)
        size = request.param("maxResults")
        return self._page(match["project"], match["job"], start, self.page_rows if size is None else int(size),
                          kind="bigquery#getQueryResultsResponse")

    def get_job(self, request: Request, match: re.Match[str]) -> Any:
        if match["job"] not in self.results:
            return error(404, f"Not found: Job {match['project']}:{match['job']}")
        reference = {"projectId": match["project"], "jobId": match["job"], "location": "US"}
        return {"kind": "bigquery#job", "id": f"{match['project']}:US.{match['job']}", "jobReference": reference,
                "status": {"state": "DONE"}, "configuration": {"query": {"query": "", "useLegacySql": False}},
                "statistics": {"creationTime": "0", "query": {"totalBytesProcessed": "0"}}}

    def _page(self, project: str, job: str, start: int, size: int, kind: str) -> dict[str, Any]:
        fields, rows = self.results[job]
        end = min(len(rows), start + size)
        page = {"kind": kind, "jobComplete": True, "schema": {"fields": fields}, "rows": rows[start:end],
                "totalRows": str(len(rows)), "jobReference": {"projectId": project, "jobId": job, "location": "US"}}
        if end < len(rows):
            page["pageToken"] = str(end)
        return page
