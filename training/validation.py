"""Validation before training: bad data stops a run with one clear line, before anything is written.

Errors (:class:`training.errors.DataError`): no rows or fewer labelled rows than the minimum, a
missing, non-numeric, infinite or constant target, duplicate column names, an unknown excluded
column, a feature that is entirely missing or holds an infinite value. A constant, ID-like or
free-text column is dropped with a message; a target outside [0, 1] is a warning (the model predicts a
probability, but a score in another range can still be learned).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from training.errors import DataError
from training.features import FeatureSpec, detect_features, target_array

log = logging.getLogger(__name__)

MIN_ROWS = 100


@dataclass
class ValidatedData:
    """A table that passed validation.

    Attributes:
        spec: Which columns feed the model, and how.
        target: The target as float64, one value per row of the table (NaN where missing).
        labelled: Positions of the rows that have a target (the rows used for training).
        warnings: What is suspicious but not fatal, one sentence each.
    """

    spec: FeatureSpec
    target: np.ndarray
    labelled: np.ndarray
    warnings: list[str] = field(default_factory=list)


def validate(
    table: pa.Table, target: str, exclude: Iterable[str] = (), min_rows: int = MIN_ROWS
) -> ValidatedData:
    """Checks a table before training (see the module docstring).

    Args:
        table: The ingested rows.
        target: The target column.
        exclude: Columns never used as features.
        min_rows: Fewest labelled rows to train and evaluate on.

    Returns:
        The feature specification and the target.

    Raises:
        DataError: The table cannot be trained on.
    """
    if table.num_rows == 0:
        raise DataError("the source returned no rows")
    spec = detect_features(table, target, exclude)
    y = target_array(table[target], target)
    labelled = np.flatnonzero(~np.isnan(y))
    if len(labelled) == 0:
        raise DataError(f"no row has a value in the target column {target!r}")
    if len(labelled) < min_rows:
        raise DataError(f"only {len(labelled)} labelled rows; at least {min_rows} are needed to train and evaluate")
    if len(labelled) < table.num_rows:
        log.info("ignoring %d rows without a target value", table.num_rows - len(labelled))
    infinite = int(np.isinf(y).sum())
    if infinite:
        raise DataError(f"the target column {target!r} has {infinite} infinite value(s)")
    low, high = float(np.nanmin(y)), float(np.nanmax(y))
    if low == high:
        raise DataError(f"the target column {target!r} is {low:g} on every labelled row: there is nothing to learn")
    warnings = []
    if low < 0 or high > 1:
        warnings.append(f"target {target!r} ranges from {low:g} to {high:g}, outside [0, 1]: "
                        "the model is meant to predict a conversion probability")
    for warning in warnings:
        log.warning(warning)
    return ValidatedData(spec=spec, target=y, labelled=labelled, warnings=warnings)
