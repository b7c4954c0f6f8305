"""Reading lead tables through DuckDB (the embedded default engine)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from training.errors import SourceError

_READERS = {".csv": "read_csv_auto", ".parquet": "read_parquet", ".pq": "read_parquet"}


def read_table(source: str | Path) -> pd.DataFrame:
    """Reads a CSV or Parquet file into a DataFrame through DuckDB.

    DuckDB sniffs CSV types (numbers, booleans such as Yes/No, timestamps) far faster than
    pandas and reads Parquet without a round trip through Python objects.

    Args:
        source: Path of a ``.csv`` or ``.parquet`` file.

    Returns:
        The table.

    Raises:
        SourceError: The file does not exist or its extension is not supported.
    """
    path = Path(source)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        raise SourceError(f"{source}: unsupported file type {path.suffix!r}; use .csv or .parquet")
    if not path.is_file():
        raise SourceError(f"{source}: no such file")
    con = duckdb.connect()
    try:
        return con.execute(f"SELECT * FROM {reader}(?)", [str(path)]).df()
    except duckdb.Error as exc:
        raise SourceError(f"{source}: {exc}") from exc
    finally:
        con.close()
