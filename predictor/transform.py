"""The feature contract: raw input schema plus the fitted preprocessing, applied with numpy.

Training fits scikit-learn's ``ColumnTransformer`` (median impute + standard scale for numeric
features; constant ``"missing"`` + one-hot with unknown categories ignored for categorical ones)
and exports its fitted parameters here. Serving applies them with plain numpy: on the request
path, pandas and scikit-learn cost more than the model itself. ``tests/test_transform.py``
proves the two give the same matrix.

XGBoost reads the matrix with ``missing=NaN`` (:data:`BOOSTER_MISSING`), and no cell of it is
ever NaN (numeric features are imputed, one-hot cells are 0 or 1): every cell is a value, so
XGBoost keeps the training matrix in its dense quantised layout, a byte per cell. Models trained
before (``"booster_missing": 0.0`` in ``transform.json``) read every 0.0 as missing, training
and serving alike; :attr:`FeatureTransform.booster_missing` keeps each model on its own reading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from itertools import repeat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MISSING_CATEGORY = "missing"
BOOSTER_MISSING = math.nan
DEFAULT_MISSING_TOKENS = ("Select",)
NUMERIC = "numeric"
BOOLEAN = "boolean"
CATEGORICAL = "categorical"


class InstanceError(ValueError):
    """One field of one instance cannot be used.

    Attributes:
        index: The instance's position in the request.
        field: The raw feature name (or ``None`` for the instance as a whole).
    """

    def __init__(self, index: int, field: str | None, message: str):
        self.index = index
        self.field = field
        where = f"instances[{index}]" + (f".{field}" if field is not None else "")
        super().__init__(f"{where}: {message}")


@dataclass(frozen=True)
class NumericFeature:
    """A numeric raw feature and its fitted imputation and scaling.

    A boolean feature is numeric 0/1; it also accepts ``true``/``false`` and the strings
    yes/no/true/false (any case), as lead forms and CSV exports write them.
    """

    name: str
    median: float
    mean: float
    scale: float
    boolean: bool = False


BOOLEAN_WORDS = {"yes": 1.0, "no": 0.0, "true": 1.0, "false": 0.0, "y": 1.0, "n": 0.0}


def boolean_value(value: Any) -> float:
    """Maps a boolean-like value to 1.0/0.0 (NaN for missing).

    Raises:
        ValueError: The value is not boolean-like.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if isinstance(value, str):
        try:
            return BOOLEAN_WORDS[value.strip().lower()]
        except KeyError:
            raise ValueError(f"expected yes/no or true/false, got {value!r}") from None
    number = float(value)
    if number not in (0.0, 1.0):
        raise ValueError(f"expected 0 or 1, got {value!r}")
    return number


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical raw feature and its fitted one-hot categories (sorted, as scikit-learn keeps them)."""

    name: str
    categories: tuple[str, ...]


@dataclass
class FeatureTransform:
    """The fitted transform from raw lead fields to the model's input matrix.

    Output columns are the numeric features in order, then each categorical feature's
    categories in order, exactly as the scikit-learn ``ColumnTransformer`` lays them out.

    Attributes:
        numeric: Numeric features with their medians, means and scales.
        categorical: Categorical features with their categories.
        missing_tokens: Category values that mean "not given" (web forms' ``Select``) and are
            treated like a missing value.
        output_names: Names of the output columns.
        zero_is_missing: The booster reads 0.0 as missing (models trained before the dense
            training matrix); otherwise only NaN, which the matrix never holds.
    """

    numeric: list[NumericFeature]
    categorical: list[CategoricalFeature]
    missing_tokens: tuple[str, ...] = DEFAULT_MISSING_TOKENS
    output_names: list[str] = field(default_factory=list)
    zero_is_missing: bool = False

    def __post_init__(self) -> None:
        # Derived lookup tables, built once per load rather than once per request.
        self._medians = np.array([f.median for f in self.numeric], dtype=np.float64)
        self._means = np.array([f.mean for f in self.numeric], dtype=np.float64)
        self._scales = np.array([f.scale for f in self.numeric], dtype=np.float64)
        offset = len(self.numeric)
        self._category_columns: list[dict[str, int]] = []
        self._one_hot_blocks: list[tuple[int, int]] = []
        for feature in self.categorical:
            self._category_columns.append({c: offset + i for i, c in enumerate(feature.categories)})
            self._one_hot_blocks.append((offset, len(feature.categories)))
            offset += len(feature.categories)
        self._n_outputs = offset
        self._missing_tokens = frozenset(self.missing_tokens)
        # Request-path lookups: raw JSON value → output column, with null and the missing tokens
        # already mapped to the "missing" category's column.
        self._request_lookups: list[dict[str | None, int]] = []
        for lookup in self._category_columns:
            missing_column = lookup.get(MISSING_CATEGORY, -1)
            extended: dict[str | None, int] = dict(lookup)
            for token in (None, *self.missing_tokens):
                extended[token] = missing_column
            self._request_lookups.append(extended)
        if not self.output_names:
            self.output_names = [f.name for f in self.numeric] + [
                f"{f.name}_{c}" for f in self.categorical for c in f.categories
            ]

    @property
    def n_outputs(self) -> int:
        """Number of columns of the model input matrix."""
        return self._n_outputs

    @property
    def booster_missing(self) -> float:
        """The ``missing`` value XGBoost reads this model's matrix with."""
        return 0.0 if self.zero_is_missing else BOOSTER_MISSING

    @property
    def feature_names(self) -> list[str]:
        """Raw feature names, numeric first."""
        return [f.name for f in self.numeric] + [f.name for f in self.categorical]

    def feature_types(self) -> dict[str, str]:
        """Raw feature name → ``"numeric"``, ``"boolean"`` or ``"categorical"``: the input schema."""
        types = {f.name: BOOLEAN if f.boolean else NUMERIC for f in self.numeric}
        types.update({f.name: CATEGORICAL for f in self.categorical})
        return types

    def one_hot_blocks(self) -> list[tuple[int, int]]:
        """``(first column, width)`` of each categorical feature's one-hot block in the output.

        The numeric features are the columns before the first block, one each.
        """
        return list(self._one_hot_blocks)

    def output_sources(self) -> list[str]:
        """For each output column, the raw feature it comes from (to sum attributions back)."""
        return [f.name for f in self.numeric] + [f.name for f in self.categorical for _ in f.categories]

    def category_value(self, value: Any) -> str:
        """Normalises a raw categorical value the way training did (missing → ``"missing"``)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return MISSING_CATEGORY
        text = str(value)
        return MISSING_CATEGORY if text in self._missing_tokens else text

    # The request path -------------------------------------------------------------------------

    def encode_instances(self, instances: Sequence[Any]) -> np.ndarray:
        """Validates JSON instances and returns the model input matrix.

        Args:
            instances: Objects keyed by raw feature name. A missing key or ``null`` is a
                missing value; keys that are not features are ignored.

        Returns:
            A float64 matrix of shape ``(len(instances), n_outputs)``.

        Raises:
            InstanceError: An instance is not an object, a numeric field is not a finite
                number, or a categorical field is not a string.
        """
        # Column by column: a list comprehension per feature plus a type check on the set of
        # types runs at C speed; the per-value loop below only runs to name a bad value.
        if set(map(type, instances)) != {dict}:
            for i, instance in enumerate(instances):
                if not isinstance(instance, dict):
                    raise InstanceError(i, None, f"expected an object keyed by feature name, got {_json_type(instance)}")
        n = len(instances)
        raw = np.empty((n, len(self.numeric)), dtype=np.float64)
        for j, feature in enumerate(self.numeric):
            raw[:, j] = _numeric_values([instance.get(feature.name) for instance in instances], feature)
        rows_parts, cols_parts = [], []
        for feature, lookup in zip(self.categorical, self._request_lookups):
            values = [instance.get(feature.name) for instance in instances]
            try:
                mapped = np.fromiter(map(lookup.get, values, repeat(-1)), dtype=np.intp, count=n)
            except TypeError:  # an unhashable value (an array or an object) is not a category
                mapped = None
            # A value of the wrong type never matches a category, so types need checking only
            # when something did not match (an unknown category, or a number, array, object...).
            if (mapped is None or mapped.min(initial=0) < 0) and not set(map(type, values)) <= _TEXT_TYPES:
                for i, value in enumerate(values):
                    if type(value) not in _TEXT_TYPES:
                        raise InstanceError(i, feature.name, f"expected a string, got {_json_type(value)}")
            known = np.flatnonzero(mapped >= 0)  # unknown categories are ignored: all zeros
            rows_parts.append(known)
            cols_parts.append(mapped[known])
        return self._assemble(self._scale(raw), *_concat(rows_parts, cols_parts))

    # The columnar path (batch prediction, training, tests) ----------------------------------

    def transform_columns(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Applies the transform to whole columns (numpy arrays, lists or pandas Series).

        Args:
            columns: Raw feature name → column. Numeric columns may hold NaN; categorical
                columns hold strings, ``None`` or NaN. Every feature must be present.

        Returns:
            A float64 matrix of shape ``(rows, n_outputs)``.

        Raises:
            KeyError: A feature column is absent.
        """
        return self.assemble(*self.encode_columns(columns))

    def encode_columns(self, columns: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`transform_columns` in compact form, which :meth:`assemble` expands.

        Args:
            columns: As for :meth:`transform_columns`.

        Returns:
            The scaled numeric block, float64 ``(rows, numeric features)``, and for each
            categorical feature the output column of each row's category (-1 for an unknown
            category: no column set), ``(rows, categorical features)``.
        """
        scaled = self._scale(self._raw_numeric(columns))
        hot = np.empty((len(scaled), len(self.categorical)), dtype=np.intp)
        for j, (feature, lookup) in enumerate(zip(self.categorical, self._category_columns)):
            hot[:, j] = self._category_codes(columns[feature.name], lookup)
        return scaled, hot

    def assemble(self, scaled: np.ndarray, hot: np.ndarray, dtype: Any = np.float64) -> np.ndarray:
        """The model matrix of :meth:`encode_columns`' output (or of a slice of it).

        Args:
            scaled: The scaled numeric block.
            hot: The one-hot output columns, -1 for none.
            dtype: The matrix's dtype (float32 for XGBoost, which reads values as float32).
        """
        rows, features = np.nonzero(hot >= 0)
        return self._assemble(scaled, rows, hot[rows, features], dtype)

    def _raw_numeric(self, columns: Mapping[str, Any]) -> np.ndarray:
        """The numeric features' raw values as a float64 matrix (NaN for missing)."""
        lengths = {len(columns[name]) for name in self.feature_names}
        if len(lengths) > 1:
            raise ValueError(f"columns have different lengths: {sorted(lengths)}")
        n = lengths.pop() if lengths else 0
        raw = np.empty((n, len(self.numeric)), dtype=np.float64)
        for j, feature in enumerate(self.numeric):
            values = columns[feature.name]
            if feature.boolean and np.asarray(values).dtype.kind in "OUT":
                values = [boolean_value(v) for v in values]
            raw[:, j] = np.asarray(values, dtype=np.float64)
        return raw

    def _category_codes(self, values: Any, lookup: Mapping[str, int]) -> np.ndarray:
        """Output column of each value's one-hot, -1 where the category is unknown."""
        # pandas only here, off the request path: its hash-based factorize maps a million-row
        # column in milliseconds, where a Python loop would take a second.
        import pandas as pd

        if isinstance(values, pd.Series):
            values = values.array
        if isinstance(values, pd.Categorical):  # already factorized (training's prepared columns)
            codes, uniques = values.codes, values.categories
        else:
            codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
        table = np.array([lookup.get(self.category_value(u), -1) for u in uniques] + [
            lookup.get(MISSING_CATEGORY, -1)], dtype=np.intp)
        return table[codes]  # the NA sentinel -1 picks the last entry: the "missing" column

    def _assemble(self, scaled: np.ndarray, hot_rows: np.ndarray, hot_cols: np.ndarray,
                  dtype: Any = np.float64) -> np.ndarray:
        out = np.zeros((scaled.shape[0], self._n_outputs), dtype=dtype)
        out[:, :len(self.numeric)] = scaled
        out[hot_rows, hot_cols] = 1.0
        return out

    def _scale(self, raw: np.ndarray) -> np.ndarray:
        """Median imputation and standard scaling of the raw numeric matrix."""
        return (np.where(np.isnan(raw), self._medians, raw) - self._means) / self._scales

    # Serialisation ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description of the fitted transform."""
        return {
            "numeric": [
                {"name": f.name, "median": f.median, "mean": f.mean, "scale": f.scale, "boolean": f.boolean}
                for f in self.numeric
            ],
            "categorical": [{"name": f.name, "categories": list(f.categories)} for f in self.categorical],
            "missing_category": MISSING_CATEGORY,
            "missing_tokens": list(self.missing_tokens),
            "booster_missing": 0.0 if self.zero_is_missing else None,  # JSON has no NaN: null
            "output_names": list(self.output_names),
        }

    @classmethod
    def from_dict(cls, payload: Mapping[str, Any]) -> FeatureTransform:
        """Rebuilds a transform from :meth:`to_dict` output."""
        return cls(
            numeric=[
                NumericFeature(d["name"], float(d["median"]), float(d["mean"]), float(d["scale"]),
                               bool(d.get("boolean", False)))
                for d in payload["numeric"]
            ],
            categorical=[CategoricalFeature(d["name"], tuple(d["categories"])) for d in payload["categorical"]],
            missing_tokens=tuple(payload.get("missing_tokens", DEFAULT_MISSING_TOKENS)),
            output_names=list(payload.get("output_names", [])),
            zero_is_missing=payload.get("booster_missing") == 0.0,
        )

    @classmethod
    def load(cls, path: Path) -> FeatureTransform:
        """Reads a transform written by :meth:`save`."""
        import json

        return cls.from_dict(json.loads(Path(path).read_text()))

    def save(self, path: Path) -> None:
        """Writes the transform as JSON."""
        import json

        Path(path).write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")


_NUMBER_TYPES = frozenset({int, float, type(None)})
_TEXT_TYPES = frozenset({str, type(None)})


def _numeric_values(values: list[Any], feature: NumericFeature) -> np.ndarray:
    """One numeric feature's JSON values as float64 (NaN for missing), validated."""
    if not feature.boolean and set(map(type, values)) <= _NUMBER_TYPES:
        array = np.array(values, dtype=np.float64)  # None becomes NaN
        bad = np.flatnonzero(~np.isfinite(array))
        for i in bad:
            if values[i] is not None:  # NaN or ±Infinity sent as a number
                raise InstanceError(int(i), feature.name, f"expected a finite number, got {values[i]!r}")
        return array
    array = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            array[i] = math.nan
        elif feature.boolean and isinstance(value, (str, bool, int)):
            try:
                array[i] = boolean_value(value)
            except ValueError as exc:
                raise InstanceError(i, feature.name, str(exc)) from None
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            if not math.isfinite(number):
                raise InstanceError(i, feature.name, f"expected a finite number, got {value!r}")
            array[i] = number
        else:
            raise InstanceError(i, feature.name, f"expected a number, got {_json_type(value)}")
    return array


def _concat(rows_parts: list[np.ndarray], cols_parts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenates per-feature one-hot coordinates (empty arrays when there are none)."""
    if not rows_parts:
        return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.intp)
    return np.concatenate(rows_parts), np.concatenate(cols_parts)


def _json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    if value is None:
        return "null"
    return type(value).__name__
