"""The model matrix, built chunk by chunk: never the whole dense matrix, never a full copy.

XGBoost's ``QuantileDMatrix`` accepts an iterator of batches and keeps only its compressed,
quantised form (about a byte per stored entry); each batch is a CSR chunk built by the serving
transform (:meth:`FeatureTransform.transform_sparse`). Predictions on many rows go through
the dense serving transform (:meth:`FeatureTransform.transform_columns`) and the compiled trees
(``predictor/forest.py``) in chunks, so evaluation scores rows exactly as serving does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

import numpy as np
import xgboost as xgb

from predictor.model import LeadScoringModel
from predictor.transform import BOOSTER_MISSING, FeatureTransform
from training.preprocess import take

# Bytes of one dense float64 chunk when scoring.
_CHUNK_BYTES = 64 << 20
MIN_CHUNK_ROWS = 10_000
# Rows of one CSR chunk fed to the QuantileDMatrix (about 20 MB of temporaries). Measured on 800,000
# training rows: 100,000-row chunks built the matrix in 1.1 s and added 132 MB at the peak, one
# 800,000-row chunk took 1.45 s and added 308 MB; XGBoost keeps only the quantised entries either way.
TRAIN_CHUNK_ROWS = 100_000


def chunk_rows(transform: FeatureTransform) -> int:
    """Rows per chunk so that one dense chunk stays near 64 MB."""
    return max(MIN_CHUNK_ROWS, _CHUNK_BYTES // (8 * max(1, transform.n_outputs)))


class _Chunks(xgb.DataIter):
    """Feeds XGBoost the CSR model matrix of ``rows``, one chunk at a time."""

    def __init__(self, transform: FeatureTransform, columns: Mapping[str, Any], rows: np.ndarray,
                 label: np.ndarray, size: int):
        self._transform, self._columns, self._rows, self._label, self._size = transform, columns, rows, label, size
        self._start = 0
        super().__init__(release_data=True)

    def next(self, input_data: Callable[..., None]) -> bool:
        if self._start >= len(self._rows):
            return False
        rows = self._rows[self._start:self._start + self._size]
        input_data(data=self._transform.transform_sparse(take(self._columns, rows)), label=self._label[rows])
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
    return xgb.QuantileDMatrix(iterator, missing=BOOSTER_MISSING, ref=ref)


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
