"""The fingerprint of a training table: rows, schema and a sha256 of the content.

The hash covers the schema and the values in row order, serialised as Arrow IPC record batches
of a fixed number of rows. Fixing the batch boundaries makes the hash independent of how the
reader happened to chunk the table, so the same rows read twice hash the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pyarrow as pa

_HASH_ROWS = 1 << 18


def schema_of(table: pa.Table) -> dict[str, str]:
    """Column name → Arrow type name."""
    return {field.name: str(field.type) for field in table.schema}


def data_fingerprint(table: pa.Table) -> dict[str, Any]:
    """``{"rows", "schema", "sha256"}`` of a table (what ``metadata.json`` records under ``data.fingerprint``)."""
    schema = schema_of(table)
    digest = hashlib.sha256(json.dumps(list(schema.items())).encode())
    # Dictionary columns are hashed as their values: the encoding is the reader's business.
    plain = pa.schema([f.with_type(f.type.value_type) if pa.types.is_dictionary(f.type) else f for f in table.schema])
    for start in range(0, table.num_rows, _HASH_ROWS):
        rows = table.slice(start, _HASH_ROWS).cast(plain)
        # take() writes fresh, unsliced buffers: IPC bytes of a slice would depend on its offset.
        for batch in rows.take(np.arange(rows.num_rows)).to_batches():
            digest.update(batch.serialize())
    return {"rows": table.num_rows, "schema": schema, "sha256": digest.hexdigest()}
