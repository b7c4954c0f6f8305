"""Feature type detection and target preparation.

Decides, for every column of a lead table, whether it is a numeric, boolean or categorical
feature or is dropped (excluded, ID-like, free text, constant, timestamp), and says why.

Detection reads an Arrow table (a pandas DataFrame is converted). Its per-column facts (missing
values, distinct values, extremes) come from one DuckDB aggregate query over the table in place;
exact distinct counts are computed only where the approximate count says they could matter,
so a 10-million-row identifier column costs one exact count, not one per column.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from predictor.transform import BOOLEAN_WORDS
from training.errors import DataError

log = logging.getLogger(__name__)

# A column whose values are all distinct is an identifier, not a feature, once there are
# enough rows for that to be telling.
ID_MIN_ROWS = 50
# A text column with more distinct values than this share of its rows is free text.
FREE_TEXT_RATIO = 0.5
# HyperLogLog's relative error is about 2 %; below this share of the rows the approximate
# distinct count cannot be near the free-text or ID thresholds, so no exact count is needed.
_EXACT_COUNT_RATIO = 0.4
# Text columns with at most this many distinct values are checked for yes/no words.
_BOOLEAN_MAX_DISTINCT = len(BOOLEAN_WORDS)
# Exact distinct counts spill to disk beyond this instead of growing the process.
_DUCKDB_MEMORY = "512MB"


@dataclass
class FeatureSpec:
    """Which columns feed the model, and how.

    Attributes:
        target: The target column.
        numeric: Numeric features (median impute + standard scale).
        boolean: Boolean features (0/1, then treated as numeric).
        categorical: Categorical features (constant ``missing`` + one-hot).
        dropped: Column → the reason it is not a feature.
    """

    target: str
    numeric: list[str] = field(default_factory=list)
    boolean: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def features(self) -> list[str]:
        """All feature columns in model order: numeric, boolean, categorical."""
        return self.numeric + self.boolean + self.categorical


@dataclass
class _Facts:
    kind: str  # numeric, integer, boolean, text, timestamp or other
    present: int  # non-missing values (NaN counts as missing)
    approx_distinct: int
    constant: bool
    words: frozenset[str] | None = None  # distinct lower-cased values of a low-cardinality text column
    infinite: int = 0  # ±inf values of a numeric column


def as_arrow(frame: pd.DataFrame | pa.Table) -> pa.Table:
    """An Arrow view of a table; pandas object columns that Arrow cannot type become strings.

    Raises:
        DataError: A column name is duplicated.
    """
    names = list(frame.column_names if isinstance(frame, pa.Table) else frame.columns)
    duplicated = sorted({str(c) for c in names if names.count(c) > 1})
    if duplicated:
        raise DataError(f"duplicate column names: {', '.join(duplicated)}")
    if isinstance(frame, pa.Table):
        return frame
    arrays = []
    for name in frame.columns:
        series = frame[name]
        try:
            arrays.append(pa.array(series, from_pandas=True))
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Python objects
            arrays.append(pa.array([None if pd.isna(v) else str(v) for v in series], type=pa.string()))
    return pa.table(arrays, names=[str(n) for n in frame.columns])


def _kind(dtype: pa.DataType) -> str:
    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "numeric"
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return "text"
    if pa.types.is_temporal(dtype):
        return "timestamp"
    if pa.types.is_null(dtype):
        return "null"
    return "other"


def _column_facts(table: pa.Table, columns: list[str]) -> dict[str, _Facts]:
    """Missing and infinite values, approximate distinct counts and constancy of each column, in one scan."""
    kinds = {c: _kind(table.schema.field(c).type) for c in columns}
    scanned = [c for c in columns if kinds[c] not in ("null", "other")]
    facts = {c: _Facts(kinds[c], 0, 0, False) for c in columns if c not in scanned}
    if not scanned:
        return facts
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{_DUCKDB_MEMORY}'")
        con.register("t", table.select(scanned))
        selects = []
        idents = {c: exp.column(c, quoted=True).sql("duckdb") for c in scanned}
        for c in scanned:
            ident = idents[c]
            value = f"CASE WHEN isnan({ident}) THEN NULL ELSE {ident} END" if kinds[c] == "numeric" else ident
            infinite = f"count_if(isinf({ident}))" if kinds[c] == "numeric" else "0"
            selects += [f"count({value})", f"approx_count_distinct({value})", f"min({value}) = max({value})", infinite]
        row = con.execute(f"SELECT {', '.join(selects)} FROM t").fetchall()[0]
        for i, c in enumerate(scanned):
            present, approx, same, infinite = row[4 * i: 4 * i + 4]
            facts[c] = _Facts(kinds[c], int(present), int(approx), bool(same) and present == table.num_rows,
                              infinite=int(infinite or 0))  # count_if of only NULLs is NULL
            if kinds[c] == "text" and approx <= _BOOLEAN_MAX_DISTINCT + 2:
                # Its few raw values (approx_count_distinct is within a few percent), normalised as
                # serving reads a yes/no word; lower(trim()) on every row cost 3x the DISTINCT itself.
                ident = idents[c]
                values = con.execute(f"SELECT DISTINCT {ident} FROM t WHERE {ident} IS NOT NULL").fetchall()
                facts[c].words = frozenset(str(v).strip().lower() for (v,) in values)
    finally:
        con.close()
    return facts


def _exact_distinct(table: pa.Table, column: str) -> int:
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{_DUCKDB_MEMORY}'")
        con.register("t", table.select([column]))
        ident = exp.column(column, quoted=True).sql("duckdb")
        return int(con.execute(f"SELECT count(DISTINCT {ident}) FROM t").fetchall()[0][0])
    finally:
        con.close()


def _drop_reason(table: pa.Table, column: str, facts: _Facts) -> str | None:
    rows = table.num_rows
    if facts.kind == "timestamp":
        return "timestamp column (not a feature)"
    if facts.kind == "other":
        return f"unsupported type {table.schema.field(column).type}"
    if facts.constant:
        return "constant"
    if facts.kind not in ("text", "integer") or rows < ID_MIN_ROWS:
        return None
    if facts.approx_distinct < _EXACT_COUNT_RATIO * rows:
        return None
    distinct = _exact_distinct(table, column)
    if facts.present == rows and distinct == rows:
        return "ID-like (a distinct value on every row)"
    if facts.kind == "text" and distinct > FREE_TEXT_RATIO * rows:
        return f"free-text-like ({distinct} distinct values in {rows} rows)"
    return None


def detect_features(frame: pd.DataFrame | pa.Table, target: str, exclude: Iterable[str] = ()) -> FeatureSpec:
    """Classifies the columns of a lead table.

    Args:
        frame: The table, target included (Arrow, or pandas which is converted).
        target: Name of the target column.
        exclude: Columns never to use (leakage, identifiers the rules miss).

    Returns:
        The feature specification; dropped columns carry the reason.

    Raises:
        DataError: The target is missing, a column name is duplicated, an excluded column
            does not exist, or a feature is entirely missing or holds an infinite value.
    """
    table = as_arrow(frame)
    names = table.column_names
    if target not in names:
        raise DataError(f"target column {target!r} not found; columns are: {', '.join(names)}")
    excluded = list(exclude)
    unknown = [c for c in excluded if c not in names]
    if unknown:
        raise DataError(f"excluded column(s) not found: {', '.join(unknown)}")
    spec = FeatureSpec(target=target)
    candidates = [c for c in names if c != target and c not in excluded]
    facts = _column_facts(table, candidates)
    for column in names:
        if column == target:
            continue
        if column in excluded:
            spec.dropped[column] = "excluded"
            continue
        fact = facts[column]
        if table.num_rows and fact.present == 0 and fact.kind not in ("timestamp", "other"):
            raise DataError(f"feature {column!r} is entirely missing; exclude it or fix the source")
        reason = _drop_reason(table, column, fact)
        if reason:
            spec.dropped[column] = reason
        elif fact.infinite:  # serving refuses a non-finite number; training cannot scale one either
            raise DataError(f"feature {column!r} has {fact.infinite} infinite value(s); exclude it or fix the source")
        elif fact.kind == "boolean" or (fact.words is not None and fact.words <= BOOLEAN_WORDS.keys()):
            spec.boolean.append(column)
        elif fact.kind in ("numeric", "integer"):
            spec.numeric.append(column)
        else:
            spec.categorical.append(column)
    for column, reason in spec.dropped.items():
        log.info("dropping column %r: %s", column, reason)
    if not spec.features:
        raise DataError("no usable feature columns remain after dropping: " + ", ".join(spec.dropped))
    return spec


def _target_value(value: Any) -> float | None:
    """A target value as float; None when it is neither a number nor a yes/no word."""
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return float(value)
    word = str(value).strip().lower()
    if word in BOOLEAN_WORDS:
        return BOOLEAN_WORDS[word]
    try:
        return float(word)
    except ValueError:
        return None


def float64_array(values: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric Arrow column as a float64 numpy array (NaN for null) that owns its memory.

    A zero-copy view would keep alive every buffer of the record batches it came from: tables
    imported through Arrow's C data interface (DuckDB's, BigQuery's) release a batch's buffers
    together, so one numeric column's view held the whole ingested table (92 MB at a million
    leads) until the end of training.
    """
    array = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)
    return array if array.flags.owndata else array.copy()


def target_array(values: pd.Series | pa.ChunkedArray | pa.Array, name: str | None = None) -> np.ndarray:
    """Converts a target column to float: numbers stay, booleans and yes/no become 1/0.

    Missing targets become NaN (the caller drops those rows). Text is mapped once per distinct
    value, not once per row.

    Args:
        values: The column.
        name: The column's name for messages (a Series' own name by default).

    Raises:
        DataError: The target holds values that are neither numeric nor yes/no/true/false.
    """
    if isinstance(values, pd.Series):
        name = name or str(values.name)
        try:
            values = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            values = pa.array([None if pd.isna(v) else str(v) for v in values], type=pa.string())
    kind = _kind(values.type)
    if kind in ("boolean", "integer", "numeric"):
        return float64_array(values)
    if kind == "null":
        return np.full(len(values), np.nan)
    encoded = pc.dictionary_encode(values)
    chunks = encoded.chunks if isinstance(encoded, pa.ChunkedArray) else [encoded]
    out = []
    bad: set[str] = set()
    for chunk in chunks:
        mapped = [_target_value(v) for v in chunk.dictionary.to_pylist()]
        bad.update(str(v) for v, m in zip(chunk.dictionary.to_pylist(), mapped) if m is None)
        table = np.array([np.nan if m is None else m for m in mapped] + [np.nan], dtype=np.float64)
        indices = chunk.indices.fill_null(len(mapped)).to_numpy(zero_copy_only=False)
        out.append(table[indices])
    if bad:
        sample = ", ".join(repr(v) for v in sorted(bad)[:5])
        raise DataError(f"target {name!r} is not numeric: values such as {sample} (yes/no and booleans are mapped)")
    return np.concatenate(out) if out else np.empty(0)
