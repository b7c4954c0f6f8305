"""Reading lead tables: one ingestion query, written in BigQuery SQL, run on BigQuery or DuckDB.

A source is a CSV or Parquet path, ``duckdb:///path.db?table=leads`` or
``bq://project.dataset.table``. The query that reads it (optional column list, optional
``TABLESAMPLE SYSTEM``, optional time window) is built once, in BigQuery's dialect
(:func:`build_query`). On BigQuery it runs as written through google-cloud-bigquery, straight
into Arrow; everywhere else sqlglot translates it to DuckDB's dialect and DuckDB runs it.
Either way the result is a ``pyarrow.Table``: no pandas objects, no CSV round trip.
"""

from __future__ import annotations

import csv
import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import duckdb
import pandas as pd
import pyarrow as pa
import sqlglot
from sqlglot import exp

from training.errors import DataError, SourceError

log = logging.getLogger(__name__)

_FILE_READERS = {".csv": "read_csv", ".parquet": "read_parquet", ".pq": "read_parquet"}
# The name a local file is queried under; the query text is the same for every source.
LOCAL_TABLE = "leads"
BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class Window:
    """An incremental window on a TIMESTAMP column: ``start <= column < end`` (either end open).

    Naive datetimes are taken as UTC.
    """

    column: str
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True)
class IngestOptions:
    """What to read from a source.

    Attributes:
        columns: Columns to read (all when empty). Reading fewer columns from BigQuery bills fewer
            bytes.
        sample_percent: Read about this share of the table with ``TABLESAMPLE SYSTEM``: BigQuery
            reads (and bills) only the sampled storage blocks, where the seed's
            ``WHERE RAND() < p`` scans the whole table. Sampling is by block (BigQuery) or by
            vector of 2,048 rows (DuckDB), so small tables are sampled coarsely.
        window: Keep only rows in a time window.
    """

    columns: tuple[str, ...] = ()
    sample_percent: float | None = None
    window: Window | None = None

    def __post_init__(self) -> None:
        if self.sample_percent is not None and not 0 < self.sample_percent <= 100:
            raise SourceError(f"sample percent must be in (0, 100], got {self.sample_percent:g}")
        duplicated = sorted({c for c in self.columns if self.columns.count(c) > 1})
        if duplicated:
            raise DataError(f"duplicate column names: {', '.join(duplicated)}")


@dataclass(frozen=True)
class Source:
    """A parsed data source.

    Attributes:
        uri: What the user wrote.
        kind: ``file``, ``duckdb`` or ``bigquery``.
        table: The table the query reads: ``project.dataset.table`` on BigQuery, the table name
            in a DuckDB database, :data:`LOCAL_TABLE` for a file.
        path: The CSV/Parquet file or the DuckDB database file.
        project: The BigQuery project (also the project billed for the query).
    """

    uri: str
    kind: str
    table: str
    path: Path | None = None
    project: str | None = None
    _parts: tuple[str, ...] = field(default=(), repr=False)

    def table_expression(self) -> exp.Table:
        """The table as a quoted sqlglot expression (catalog.db.name on BigQuery)."""
        parts = self._parts or (self.table,)
        *qualifiers, name = parts
        catalog, db = ([None, None] + qualifiers)[-2:]
        return exp.table_(name, db=db, catalog=catalog, quoted=True)


def parse_source(uri: str | Path) -> Source:
    """Parses a ``--data`` value.

    Accepted forms: a ``.csv``/``.parquet`` path; ``duckdb:///leads.db?table=leads`` (the path
    after ``duckdb:///`` is relative, as in SQLAlchemy URLs; ``duckdb:////abs/leads.db`` is
    absolute); ``bq://project.dataset.table``.

    Raises:
        SourceError: The value is none of these.
    """
    text = str(uri)
    if text.startswith("bq://"):
        parts = tuple(text[len("bq://"):].split("."))
        if len(parts) != 3 or not all(parts):
            raise SourceError(f"{text}: expected bq://project.dataset.table")
        return Source(text, "bigquery", ".".join(parts), project=parts[0], _parts=parts)
    if text.startswith("duckdb://"):
        parsed = urlparse(text)
        path = (parsed.netloc + parsed.path).removeprefix("/")
        tables = parse_qs(parsed.query).get("table")
        if not path or not tables:
            raise SourceError(f"{text}: expected duckdb:///path/to/file.db?table=NAME")
        parts = tuple(tables[0].split("."))
        return Source(text, "duckdb", tables[0], path=Path(path), _parts=parts)
    if "://" in text:
        raise SourceError(f"{text}: unsupported source; use a .csv/.parquet path, duckdb:///file.db?table=NAME "
                          "or bq://project.dataset.table")
    path = Path(text)
    if path.suffix.lower() not in _FILE_READERS:
        raise SourceError(f"{text}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    return Source(text, "file", LOCAL_TABLE, path=path)


def _timestamp_literal(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).isoformat(sep=" ")


def build_query(source: Source, options: IngestOptions = IngestOptions()) -> str:
    """The ingestion query in BigQuery SQL.

    Identifiers are quoted and timestamps formatted by this function, never pasted from input,
    so a column name cannot change the query's meaning.

    Returns:
        For example ``SELECT `a`, `b` FROM `p`.`d`.`t` TABLESAMPLE SYSTEM (10 PERCENT)
        WHERE `created_at` >= TIMESTAMP '2026-01-01 00:00:00+00:00'``.
    """
    select = ", ".join(exp.column(c, quoted=True).sql("bigquery") for c in options.columns) or "*"
    sql = f"SELECT {select} FROM {source.table_expression().sql('bigquery')}"
    if options.sample_percent is not None:
        sql += f" TABLESAMPLE SYSTEM ({options.sample_percent:g} PERCENT)"
    window = options.window
    if window is not None and (window.start or window.end):
        column = exp.column(window.column, quoted=True).sql("bigquery")
        conditions = []
        if window.start is not None:
            conditions.append(f"{column} >= TIMESTAMP {exp.Literal.string(_timestamp_literal(window.start)).sql()}")
        if window.end is not None:
            conditions.append(f"{column} < TIMESTAMP {exp.Literal.string(_timestamp_literal(window.end)).sql()}")
        sql += " WHERE " + " AND ".join(conditions)
    return sql


def to_duckdb(sql: str) -> str:
    """Translates BigQuery SQL to DuckDB's dialect with sqlglot."""
    return sqlglot.transpile(sql, read="bigquery", write="duckdb")[0]


def ingest(
    source: str | Path | Source, options: IngestOptions = IngestOptions(), *, bigquery_client: Any = None
) -> pa.Table:
    """Runs the ingestion query and returns the rows as an Arrow table.

    Args:
        source: A ``--data`` value or a parsed :class:`Source`.
        options: Columns, sampling and window.
        bigquery_client: A ``google.cloud.bigquery.Client`` for a ``bq://`` source; by default
            one is created for the source's project with application default credentials.

    Returns:
        The rows, with the source's column names and types.

    Raises:
        SourceError: The source cannot be read or the query fails.
        DataError: The source has duplicate column names.
    """
    source = source if isinstance(source, Source) else parse_source(source)
    sql = build_query(source, options)
    if source.kind == "bigquery":
        return _run_bigquery(source, sql, bigquery_client)
    return _run_duckdb(source, sql)


def ingest_batches(
    source: str | Path | Source,
    options: IngestOptions = IngestOptions(),
    *,
    batch_rows: int = BATCH_ROWS,
    bigquery_client: Any = None,
) -> Iterator[pa.RecordBatch]:
    """:func:`ingest`, one Arrow record batch at a time: memory holds about one batch whatever the
    table's size (batch prediction). BigQuery results arrive in the REST API's pages of ``batch_rows``.

    Raises:
        SourceError: The source cannot be read or the query fails (also while iterating).
        DataError: The source has duplicate column names.
    """
    source = source if isinstance(source, Source) else parse_source(source)
    sql = build_query(source, options)
    if source.kind == "bigquery":
        from google.api_core import exceptions as google_exceptions

        rows = _query_bigquery(source, sql, bigquery_client, page_size=batch_rows)
        try:
            yield from rows.to_arrow_iterable()
        except google_exceptions.GoogleAPIError as exc:
            raise SourceError(f"{source.uri}: {exc}") from exc
        return
    with _duckdb_reader(source, sql, batch_rows) as reader:
        yield from reader


def _run_duckdb(source: Source, sql: str) -> pa.Table:
    with _duckdb_reader(source, sql, BATCH_ROWS) as reader:
        return reader.read_all()


@contextmanager
def _duckdb_reader(source: Source, sql: str, batch_rows: int) -> Iterator[pa.RecordBatchReader]:
    """The query's result as a streaming Arrow reader; DuckDB errors (also mid-stream) become SourceError."""
    assert source.path is not None
    if not source.path.is_file():
        raise SourceError(f"{source.uri}: no such file")
    try:
        if source.kind == "duckdb":
            con = duckdb.connect(str(source.path), read_only=True)
        else:
            con = duckdb.connect()
            _check_header(con, source.path)
            reader = getattr(con, _FILE_READERS[source.path.suffix.lower()])
            reader(str(source.path)).to_view(LOCAL_TABLE)
    except duckdb.Error as exc:
        raise SourceError(f"{source.uri}: {exc}") from exc
    try:
        yield con.sql(to_duckdb(sql)).to_arrow_reader(batch_rows)
    except duckdb.Error as exc:
        raise SourceError(f"{source.uri}: {exc}") from exc
    finally:
        con.close()


def _check_header(con: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Refuses a file with duplicate column names, which DuckDB would silently rename (``a_1``)."""
    if path.suffix.lower() == ".csv":
        sniffed = con.execute("SELECT Delimiter, Quote, SkipRows, HasHeader FROM sniff_csv(?)", [str(path)])
        [(delimiter, quote, skip, has_header)] = sniffed.fetchall()
        if not has_header:
            return
        with open(path, newline="", encoding="utf-8", errors="replace") as handle:
            for _ in range(skip):
                handle.readline()
            quotechar = quote if quote and quote != "(empty)" else '"'
            names = next(csv.reader(handle, delimiter=delimiter, quotechar=quotechar), [])
    else:
        import pyarrow.parquet as pq

        try:
            names = pq.read_schema(path).names
        except (OSError, pa.ArrowException) as exc:
            raise SourceError(f"{path}: not a readable Parquet file ({exc})") from exc
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise DataError(f"duplicate column names: {', '.join(duplicated)}")


def storage_api_available() -> bool:
    """Whether google-cloud-bigquery-storage is installed (faster, parallel result download)."""
    return importlib.util.find_spec("google.cloud.bigquery_storage") is not None


def _run_bigquery(source: Source, sql: str, client: Any) -> pa.Table:
    from google.api_core import exceptions as google_exceptions

    use_storage = storage_api_available()
    rows = _query_bigquery(source, sql, client)
    log.info("BigQuery: results via the %s", "Storage Read API" if use_storage else "REST API")
    try:
        # Without google-cloud-bigquery-storage the SDK pages through the REST API instead.
        return rows.to_arrow(create_bqstorage_client=use_storage)
    except google_exceptions.GoogleAPIError as exc:
        raise SourceError(f"{source.uri}: {exc}") from exc


def _query_bigquery(source: Source, sql: str, client: Any, page_size: int | None = None) -> Any:
    """Runs the query on BigQuery; returns its ``RowIterator``."""
    from google.api_core import exceptions as google_exceptions
    from google.cloud import bigquery

    client = client or bigquery.Client(project=source.project)
    config = bigquery.QueryJobConfig(use_legacy_sql=False, labels={"application": "leadscore"})
    log.info("BigQuery: %s", sql)
    try:
        return client.query_and_wait(sql, job_config=config, page_size=page_size)
    except google_exceptions.GoogleAPIError as exc:
        raise SourceError(f"{source.uri}: {exc}") from exc


def read_table(source: str | Path) -> pd.DataFrame:
    """Reads a whole source into a DataFrame (small tables: tests, monitoring windows).

    Training reads Arrow through :func:`ingest` instead.
    """
    return ingest(source).to_pandas()
