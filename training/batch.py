"""Local batch prediction: a lead table in, one prediction (or one error) per row out.

Reading, scoring and writing go chunk by chunk, so memory stays bounded whatever the input size.
Each chunk is scored vectorised (:meth:`FeatureTransform.transform_columns` and
:meth:`LeadScoringModel.predict_matrix` on the whole chunk); only when that fails does the chunk fall back to row
by row, so that one bad row becomes an error row and the rest are still scored. No row is ever
dropped.

Output rows follow Vertex AI batch prediction: JSONL lines ``{"instance": {...}, "prediction": p}``
or ``{"instance": {...}, "error": "..."}``, or Parquet with the input columns plus ``prediction``
and ``error``.

Inputs:

- Parquet, CSV, ``duckdb:///file.db?table=NAME`` and ``bq://project.dataset.table`` are read as
  typed Arrow columns through the data sources' ingestion query, streamed
  (:func:`training.sources.ingest_batches`; CSV types are sniffed as in training).
- JSONL holds one instance per line, exactly as in an online request, and gets the online
  request's checks (a string where a number belongs is an error; a missing key is a missing value).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from predictor.model import LeadScoringModel
from predictor.transform import FeatureTransform, InstanceError
from training.errors import LeadscoreError
from training.sources import ingest_batches

DEFAULT_CHUNK_ROWS = 100_000
PREDICTION_COLUMN = "prediction"
ERROR_COLUMN = "error"
_FILE_SUFFIXES = (".parquet", ".pq", ".csv")
_JSONL_SUFFIXES = (".jsonl", ".json", ".ndjson")
_OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class BatchError(LeadscoreError):
    """A batch prediction cannot run (unreadable input, unsupported format, missing columns...)."""


@dataclass
class BatchResult:
    """What a batch prediction wrote.

    Attributes:
        output: The output file.
        rows: Rows read (every one is in the output).
        errors: Rows that could not be scored (written as error rows).
        seconds: Wall time.
    """

    output: Path
    rows: int
    errors: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        """Throughput, end to end."""
        return self.rows / self.seconds if self.seconds else 0.0


@dataclass
class ScoredChunk:
    """Scores of one chunk: ``predictions[i]`` is NaN exactly where ``errors`` has row ``i``.

    Attributes:
        predictions: One score per row.
        errors: Row index → why it could not be scored (sparse: usually empty).
    """

    predictions: np.ndarray
    errors: dict[int, str]

    def fail(self, errors: dict[int, str]) -> ScoredChunk:
        """Marks more rows as errors."""
        self.errors.update(errors)
        self.predictions[list(errors)] = np.nan
        return self

    def error_column(self) -> pa.Array:
        """The errors as a string column (null where the row was scored)."""
        if not self.errors:
            return pa.nulls(len(self.predictions), pa.string())
        return pa.array([self.errors.get(i) for i in range(len(self.predictions))], pa.string())

    def prediction_column(self) -> pa.Array:
        """The predictions as a float64 column (null for error rows)."""
        return pa.array(self.predictions, mask=np.isnan(self.predictions))


# Scoring ----------------------------------------------------------------------------------------


def _first_line(exc: Exception) -> str:
    """An exception's message without XGBoost's appended C++ stack trace."""
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _nonfinite_errors(transform: FeatureTransform, matrix: np.ndarray) -> dict[int, str]:
    """Rows whose model input holds ±inf (a value XGBoost refuses), named by feature."""
    finite = np.isfinite(matrix)
    sources = transform.output_sources()
    return {
        int(i): f"{sources[int(np.argmin(finite[i]))]}: expected a finite number"
        for i in np.flatnonzero(~finite.all(axis=1))
    }


def _score_matrix(model: LeadScoringModel, matrix: np.ndarray, skip: dict[int, str] | None = None) -> ScoredChunk:
    """Scores a model matrix, except the rows in ``skip`` and rows that are not finite."""
    errors = {**_nonfinite_errors(model.transform, matrix), **(skip or {})}
    if not errors:
        return ScoredChunk(model.predict_matrix(matrix).astype(np.float64), {})
    predictions = np.full(matrix.shape[0], np.nan)
    ok = np.ones(matrix.shape[0], dtype=bool)
    ok[list(errors)] = False
    if ok.any():
        predictions[ok] = model.predict_matrix(matrix[ok])
    return ScoredChunk(predictions, errors)


def _column_error(transform: FeatureTransform, row: dict[str, Any]) -> str:
    """Names the feature whose value makes ``transform_columns`` fail for one row."""
    for name in transform.feature_names:
        single = {f: [row.get(f) if f == name else None] for f in transform.feature_names}
        try:
            transform.transform_columns(single)
        except (ValueError, TypeError) as exc:
            return f"{name}: {_first_line(exc)}"  # numpy's and boolean_value's messages quote the value
    return "the row cannot be transformed"


def _columns(transform: FeatureTransform, batch: pa.RecordBatch) -> dict[str, Any]:
    """The feature columns for ``transform_columns``: numbers as numpy; categories dictionary-encoded by
    Arrow (a pandas Categorical), which is half the cost of handing over a million Python strings."""
    categorical = {feature.name for feature in transform.categorical}
    return {
        name: batch.column(name).dictionary_encode().to_pandas() if name in categorical
        else batch.column(name).to_numpy(zero_copy_only=False)
        for name in transform.feature_names
    }


def score_columns(model: LeadScoringModel, batch: pa.RecordBatch) -> ScoredChunk:
    """Scores a chunk of typed columns; rows that cannot be scored get an error message.

    Args:
        model: The loaded model.
        batch: Rows with (at least) every feature as a column.

    Returns:
        One prediction or error per row.
    """
    transform = model.transform
    try:
        return _score_matrix(model, transform.transform_columns(_columns(transform, batch)))
    except (ValueError, TypeError):
        pass  # some value in this chunk is unusable: find it row by row below
    rows = batch.select(transform.feature_names).to_pylist()
    matrix = np.zeros((len(rows), transform.n_outputs))
    errors: dict[int, str] = {}
    for i, row in enumerate(rows):
        try:
            matrix[i] = transform.transform_columns({name: [row[name]] for name in transform.feature_names})[0]
        except (ValueError, TypeError):
            errors[i] = _column_error(transform, row)
    return _score_matrix(model, matrix, skip=errors)


def score_instances(model: LeadScoringModel, instances: list[Any]) -> ScoredChunk:
    """Scores JSON instances with the online request's checks; a bad instance becomes an error.

    ``instances`` may hold :class:`_Unparsable` markers for lines that were not JSON.
    """
    transform = model.transform
    errors = {i: f"not valid JSON: {item.reason}" for i, item in enumerate(instances) if isinstance(item, _Unparsable)}
    good = [i for i in range(len(instances)) if i not in errors]
    matrix = np.zeros((len(instances), transform.n_outputs))
    try:
        matrix[good] = transform.encode_instances([instances[i] for i in good])
    except InstanceError:
        for i in good:  # row by row, to keep every good instance of this chunk
            try:
                matrix[i] = transform.encode_instances([instances[i]])[0]
            except InstanceError as exc:
                # "instances[0].field: message" → "field: message"
                message = str(exc).split(": ", 1)[-1]
                errors[i] = message if exc.field is None else f"{exc.field}: {message}"
    return _score_matrix(model, matrix, skip=errors)


# Reading ----------------------------------------------------------------------------------------


@dataclass
class _Unparsable:
    """A JSONL line that is not JSON: written back as the error row's instance."""

    line: str
    reason: str


def _jsonl_chunks(path: Path, chunk_rows: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    with open(path, encoding="utf-8", errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                chunk.append(json.loads(line))
            except json.JSONDecodeError as exc:
                chunk.append(_Unparsable(line.rstrip("\n"), f"line {number}: {exc.msg} at column {exc.colno}"))
            if len(chunk) == chunk_rows:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


# Writing ----------------------------------------------------------------------------------------


def _finite_or_null(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_null(v) for v in value]
    return value


def _dumps(value: Any) -> str:
    """Strict JSON; NaN and ±Infinity (which Python's parser accepts in a JSONL input) become null."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except ValueError:
        return json.dumps(_finite_or_null(value), allow_nan=False, ensure_ascii=False)


def _json_struct(names: list[str], types: list[Any]) -> str:
    """DuckDB SQL for the instance object; NaN and ±inf (invalid JSON) are written as null."""
    fields = []
    for name, dtype in zip(names, types):
        column = '"' + name.replace('"', '""') + '"'
        if str(dtype) in ("FLOAT", "DOUBLE"):
            column = f"CASE WHEN isfinite({column}) THEN {column} END"
        fields.append("'" + name.replace("'", "''") + "': " + column)
    return "{" + ", ".join(fields) + "}"


class _JsonlSink:
    """Vertex batch prediction's JSONL rows; typed chunks are rendered by DuckDB, in C++."""

    def __init__(self, handle: Any, con: duckdb.DuckDBPyConnection):
        self.handle, self.con = handle, con

    def write_columns(self, batch: pa.RecordBatch, scored: ScoredChunk) -> None:
        chunk = batch.append_column("__prediction", scored.prediction_column()).append_column(
            "__error", scored.error_column())
        relation = self.con.from_arrow(pa.Table.from_batches([chunk]))
        instance = _json_struct(batch.schema.names, relation.types[: batch.num_columns])
        # Each line ends in a newline inside the string, so the Arrow data buffer of the result
        # is the chunk's file content as is: no per-row Python work.
        lines = relation.query("chunk", (
            f"SELECT CASE WHEN __error IS NULL THEN to_json({{'instance': {instance}, 'prediction': __prediction}}) "
            f"ELSE to_json({{'instance': {instance}, 'error': __error}}) END || chr(10) FROM chunk"
        )).to_arrow_table().column(0)
        for array in lines.chunks:
            offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset: array.offset + len(array) + 1]
            self.handle.write(memoryview(array.buffers()[2])[offsets[0]:offsets[-1]])

    def write_instances(self, instances: list[Any], scored: ScoredChunk) -> None:
        lines = []
        for i, (item, prediction) in enumerate(zip(instances, scored.predictions.tolist())):
            instance = item.line if isinstance(item, _Unparsable) else item
            error = scored.errors.get(i)
            row = {"instance": instance, "error": error} if error else {"instance": instance, "prediction": prediction}
            lines.append(_dumps(row))
        self.handle.write(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape"))

    def close(self) -> None:
        pass


class _ParquetSink:
    """The input columns plus ``prediction`` and ``error`` (JSONL input: ``instance`` as JSON text)."""

    def __init__(self, handle: Any):
        self.handle = handle
        self.writer: pq.ParquetWriter | None = None

    def _write(self, table: pa.Table) -> None:
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.handle, table.schema)
        self.writer.write_table(table)

    def write_columns(self, batch: pa.RecordBatch, scored: ScoredChunk) -> None:
        table = pa.Table.from_batches([batch])
        table = table.append_column(PREDICTION_COLUMN, scored.prediction_column())
        self._write(table.append_column(ERROR_COLUMN, scored.error_column()))

    def write_instances(self, instances: list[Any], scored: ScoredChunk) -> None:
        texts = [item.line if isinstance(item, _Unparsable) else _dumps(item) for item in instances]
        self._write(pa.table({
            "instance": pa.array(texts, pa.string()),
            PREDICTION_COLUMN: scored.prediction_column(),
            ERROR_COLUMN: scored.error_column(),
        }))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def output_format(output: str | Path) -> str:
    """``"jsonl"`` or ``"parquet"`` from the output file's extension.

    Raises:
        BatchError: Another extension.
    """
    fmt = _OUTPUT_FORMATS.get(Path(output).suffix.lower())
    if fmt is None:
        raise BatchError(f"{output}: unsupported output type; use .jsonl or .parquet")
    return fmt


# The run ----------------------------------------------------------------------------------------


def batch_predict(
    model_uri: str,
    source: str,
    output: str | Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: Callable[[int, int | None], None] | None = None,
    bigquery_client: Any = None,
) -> BatchResult:
    """Scores every row of a lead table and writes one output row per input row.

    The output is written to a temporary sibling and renamed into place at the end, so a
    failed run never leaves a partial file under ``output``.

    Args:
        model_uri: The model's artifact directory or ``gs://`` URI.
        source: A ``.parquet``, ``.csv`` or ``.jsonl`` file, ``duckdb:///file.db?table=NAME`` or
            ``bq://project.dataset.table`` (read through :func:`training.sources.ingest_batches`).
        output: A ``.jsonl`` (Vertex batch prediction rows) or ``.parquet`` file.
        chunk_rows: Rows per chunk: memory is proportional to it.
        progress: Called after each chunk with (rows done, total rows or None when unknown).
        bigquery_client: The ``google.cloud.bigquery.Client`` for a ``bq://`` source (default: ADC).

    Returns:
        Counts and timing.

    Raises:
        BatchError: The input lacks feature columns or a format is unsupported.
        training.errors.SourceError: The input cannot be read.
    """
    started = time.perf_counter()
    output = Path(output)
    fmt = output_format(output)
    model = LeadScoringModel.load(model_uri)
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # ours is the progress bar
    done = errors = 0
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            # The sink renders JSON on its own cursor while the reader streams on ``con``.
            sink = _JsonlSink(handle, con.cursor()) if fmt == "jsonl" else _ParquetSink(handle)
            for scored, count, total in _scored_chunks(model, con, source, chunk_rows, sink, bigquery_client):
                done += count
                errors += len(scored.errors)
                if progress:
                    progress(done, total)
            sink.close()
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    finally:
        con.close()
    return BatchResult(output=output, rows=done, errors=errors, seconds=time.perf_counter() - started)


def _scored_chunks(model: LeadScoringModel, con: duckdb.DuckDBPyConnection, source: str, chunk_rows: int,
                   sink: _JsonlSink | _ParquetSink, bigquery_client: Any) -> Iterator[tuple[ScoredChunk, int, int | None]]:
    """Reads, scores and writes chunk by chunk; yields each chunk's scores, size and the total."""
    suffix = Path(source).suffix.lower() if "://" not in source else ""
    if suffix in _JSONL_SUFFIXES:
        if not Path(source).is_file():
            raise BatchError(f"{source}: no such file")
        for instances in _jsonl_chunks(Path(source), chunk_rows):
            scored = score_instances(model, instances)
            sink.write_instances(instances, scored)
            yield scored, len(instances), None
        return
    if "://" not in source and suffix not in _FILE_SUFFIXES:
        raise BatchError(f"{source}: unsupported input type {suffix!r}; use .parquet, .csv, .jsonl, "
                         "duckdb:///file.db?table=NAME or bq://project.dataset.table")
    total = _row_count(con, source) if suffix in (".parquet", ".pq") and Path(source).is_file() else None
    batches = ingest_batches(source, batch_rows=chunk_rows, bigquery_client=bigquery_client)
    for number, batch in enumerate(batches):
        if number == 0:
            _check_columns(model, source, batch.schema.names)
        scored = score_columns(model, batch)
        sink.write_columns(batch, scored)
        yield scored, batch.num_rows, total


def _check_columns(model: LeadScoringModel, source: str, columns: list[str]) -> None:
    missing = [name for name in model.transform.feature_names if name not in columns]
    if missing:
        raise BatchError(f"{source}: no column for feature(s) {', '.join(missing)}")
    clash = [name for name in (PREDICTION_COLUMN, ERROR_COLUMN) if name in columns]
    if clash:
        raise BatchError(f"{source}: input column(s) {', '.join(clash)} would clash with the output's")


def _row_count(con: duckdb.DuckDBPyConnection, path: str) -> int:
    """A Parquet file's row count, from its footer (for the progress bar)."""
    return int(con.execute("SELECT sum(num_rows) FROM parquet_file_metadata(?)", [path]).fetchall()[0][0])
