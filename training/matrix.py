"""The model matrix, built chunk by chunk: never the whole float matrix, never a full copy.

XGBoost's ``QuantileDMatrix`` accepts an iterator of batches and keeps only its quantised form.
The training rows are encoded once into the serving transform's compact form
(:meth:`FeatureTransform.encode_columns`) and each batch is one chunk of it expanded to the model
matrix (:meth:`FeatureTransform.assemble`), as :meth:`FeatureTransform.transform_columns` does.
The chunks are dense on purpose: the matrix holds no missing cell (see ``predictor/transform.py``),
so XGBoost keeps it in its dense layout, one byte per cell. Fed as CSR chunks with the one-hot
zeros absent (read as missing), XGBoost chose its sparse layout, which stores a wide bin index and
a row number per entry: at a million leads that peaked 44 MB higher and boosted no faster.
Only one chunk of the float matrix exists at a time. Predictions on many rows go through the same
transform and the compiled trees (``predictor/forest.py``) in chunks, so evaluation scores rows
exactly as serving does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import xgboost as xgb

from predictor.model import LeadScoringModel
from predictor.transform import FeatureTransform
from training.preprocess import take

# Bytes of one dense float64 chunk when scoring.
_CHUNK_BYTES = 64 << 20
MIN_CHUNK_ROWS = 10_000
# Rows of one chunk fed to the QuantileDMatrix (4 MB of float32 for 21 columns). Measured on 800,000
# training rows: 25,000 to 100,000-row chunks built the matrix in 0.68-0.71 s, 200,000-row chunks in 0.8 s.
TRAIN_CHUNK_ROWS = 50_000


def chunk_rows(transform: FeatureTransform) -> int:
    """Rows per chunk so that one dense chunk stays near 64 MB."""
    return max(MIN_CHUNK_ROWS, _CHUNK_BYTES // (8 * max(1, transform.n_outputs)))


class _Chunks(xgb.DataIter):
    """Feeds XGBoost the model matrix of ``rows``, one chunk at a time.

    XGBoost reads the batches four times (shape, sketch, index, column index), so the rows are
    transformed once, chunk by chunk, into the transform's compact form (float32 scaled numeric
    block, one-hot column numbers and labels: 25 MB at 800,000 synthetic leads); a pass only expands
    each chunk to its float32 matrix. Transforming on every pass cost 0.8 s of the 1.07 s the
    matrix took at 800,000 rows. float32 is what XGBoost reads the values as in any case.
    """

    def __init__(self, transform: FeatureTransform, columns: Mapping[str, Any], rows: np.ndarray,
                 label: np.ndarray, size: int):
        self._transform, self._size = transform, size
        self._scaled = np.empty((len(rows), len(transform.numeric)), dtype=np.float32)
        self._hot = np.empty((len(rows), len(transform.categorical)), dtype=np.int32)
        for start in range(0, len(rows), size):
            part = slice(start, start + size)
            self._scaled[part], self._hot[part] = transform.encode_columns(take(columns, rows[part]))
        self._label = label[rows].astype(np.float32)
        self._start = 0
        super().__init__(release_data=True)

    def next(self, input_data: Callable[..., None]) -> bool:
        if self._start >= len(self._label):
            return False
        part = slice(self._start, self._start + self._size)
        input_data(data=self._transform.assemble(self._scaled[part], self._hot[part], np.float32),
                   label=self._label[part])
        self._start += self._size
        return True

    def reset(self) -> None:
        self._start = 0


def quantile_matrix(
    transform: FeatureTransform,
    columns: Mapping[str, Any],
    rows: np.ndarray,
    label: np.ndarray,
    ref: xgb.QuantileDMatrix | None = None,
    chunk: int | None = None,
) -> xgb.QuantileDMatrix:
    """The training (or validation) matrix of some rows as a ``QuantileDMatrix``.

    Args:
        transform: The fitted transform.
        columns: Prepared columns of all rows.
        rows: Which rows, in this order.
        label: Targets of all rows (indexed by ``rows``).
        ref: The training matrix, for a validation matrix (same quantile cuts).
        chunk: Rows per chunk (default: :data:`TRAIN_CHUNK_ROWS`).
    """
    iterator = _Chunks(transform, columns, np.asarray(rows), label, chunk or TRAIN_CHUNK_ROWS)
    return xgb.QuantileDMatrix(iterator, missing=transform.booster_missing, ref=ref)


def predict_rows(model: LeadScoringModel, columns: Mapping[str, Any], rows: np.ndarray | None = None) -> np.ndarray:
    """Scores rows of prepared columns as serving does (transform and evaluator), chunk by chunk.

    Args:
        model: The model (:meth:`LeadScoringModel.from_booster` for one not written yet).
        columns: Prepared columns.
        rows: Which rows (all when None).
    """
    n = len(next(iter(columns.values()))) if rows is None else len(rows)
    size = chunk_rows(model.transform)
    out = np.empty(n, dtype=np.float32)
    for start in range(0, n, size):
        index = np.arange(start, min(n, start + size)) if rows is None else rows[start:start + size]
        out[start:start + len(index)] = model.predict_matrix(model.transform.transform_columns(take(columns, index)))
    return out
