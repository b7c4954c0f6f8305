"""Preparing feature columns and fitting the preprocessing that becomes the serving contract.

Scikit-learn defines the preprocessing: median imputation + standard scaling for numeric
features, constant ``missing`` + one-hot with unknown categories ignored for categorical ones
(:func:`build_column_transformer`, the reference).

:func:`fit_feature_transform` fits it without the memory cost of a ``ColumnTransformer`` on
object arrays, one column at a time (every step is column-wise): the median is numpy's
``nanmedian`` (what ``SimpleImputer`` computes, without its slow masked-array sort), the
scaling is scikit-learn's ``StandardScaler`` fitted on the imputed column, and a one-hot
encoder's categories are read off the categorical codes (the sorted distinct values, plus
``missing`` when a value is missing), which is what ``OneHotEncoder`` learns.
``tests/test_preprocess.py`` proves the result equal to the fitted ``ColumnTransformer`` on the
X Education data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from predictor.transform import (
    BOOLEAN_WORDS,
    DEFAULT_MISSING_TOKENS,
    MISSING_CATEGORY,
    CategoricalFeature,
    FeatureTransform,
    NumericFeature,
)
from training.features import FeatureSpec, as_arrow, float64_array

# Prepared columns: float64 arrays (NaN for missing) for numeric and boolean features,
# pandas Categoricals of strings (NaN for missing) for categorical ones.
Columns = dict[str, Any]


def _boolean_column(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_boolean(column.type) or pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return float64_array(column)
    # yes/no text: map each distinct word once.
    words = pc.utf8_lower(pc.utf8_trim_whitespace(pc.cast(column, pa.string())))
    encoded = pc.dictionary_encode(words).combine_chunks()
    table = np.array([BOOLEAN_WORDS[w] for w in encoded.dictionary.to_pylist()] + [np.nan], dtype=np.float64)
    return table[encoded.indices.fill_null(len(encoded.dictionary)).to_numpy(zero_copy_only=False)]


def _categorical_column(column: pa.ChunkedArray, tokens: Sequence[str]) -> pd.Categorical:
    if not (pa.types.is_dictionary(column.type) or pa.types.is_string(column.type)):
        column = pc.cast(column, pa.string())
    encoded = column if pa.types.is_dictionary(column.type) else pc.dictionary_encode(column)
    categorical = encoded.to_pandas().array
    if not isinstance(categorical, pd.Categorical):  # an empty column
        categorical = pd.Categorical(categorical)
    if not all(isinstance(c, str) for c in categorical.categories):
        categorical = categorical.rename_categories([str(c) for c in categorical.categories])
    placeholders = [t for t in tokens if t in categorical.categories]
    return categorical.remove_categories(placeholders) if placeholders else categorical


def prepare_columns(
    table: pa.Table | pd.DataFrame, spec: FeatureSpec, missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS
) -> Columns:
    """Brings feature columns to the types the transform reads, exactly as serving reads them.

    Numeric and boolean columns become float64 arrays with NaN for missing (yes/no words map to
    1/0); categorical columns become pandas Categoricals of strings, with the placeholder tokens
    (``Select``) turned into missing values. A categorical column costs a small integer per row
    instead of a Python string.
    """
    table = as_arrow(table)
    prepared: Columns = {}
    for column in spec.numeric:
        prepared[column] = float64_array(table[column])
    for column in spec.boolean:
        prepared[column] = _boolean_column(table[column])
    for column in spec.categorical:
        prepared[column] = _categorical_column(table[column], list(missing_tokens))
    return {c: prepared[c] for c in spec.features}


def prepare_frame(
    frame: pd.DataFrame | pa.Table, spec: FeatureSpec, missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS
) -> pd.DataFrame:
    """:func:`prepare_columns` as a DataFrame (categorical columns have the ``category`` dtype)."""
    return pd.DataFrame(prepare_columns(frame, spec, missing_tokens))


def take(columns: Mapping[str, Any], rows: np.ndarray) -> Columns:
    """The given rows of prepared columns."""
    return {name: values[rows] for name, values in columns.items()}


def build_column_transformer(spec: FeatureSpec) -> ColumnTransformer:
    """The seed's whole preprocessing as a ``ColumnTransformer`` (the reference for tests and benchmarks).

    The output is always sparse (``sparse_threshold=1.0``) so the one-hot block is never densified.
    """
    numeric = Pipeline(
        [
            ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]
    )
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY, keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=True, dtype=np.float64)),
        ]
    )
    transformers = []
    if spec.numeric or spec.boolean:
        transformers.append(("num", numeric, spec.numeric + spec.boolean))
    if spec.categorical:
        transformers.append(("cat", categorical, spec.categorical))
    return ColumnTransformer(transformers, sparse_threshold=1.0)


def export_transform(
    fitted: ColumnTransformer, spec: FeatureSpec, missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS
) -> FeatureTransform:
    """Reads the fitted parameters out of a ``ColumnTransformer`` into the serving contract."""
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    if spec.numeric or spec.boolean:
        pipeline = fitted.named_transformers_["num"]
        medians = pipeline.named_steps["impute"].statistics_
        scaler = pipeline.named_steps["scale"]
        booleans = set(spec.boolean)
        for i, name in enumerate(spec.numeric + spec.boolean):
            numeric.append(
                NumericFeature(
                    name=name,
                    median=float(medians[i]),
                    mean=float(scaler.mean_[i]),
                    scale=float(scaler.scale_[i]),
                    boolean=name in booleans,
                )
            )
    if spec.categorical:
        encoder = fitted.named_transformers_["cat"].named_steps["onehot"]
        for name, categories in zip(spec.categorical, encoder.categories_):
            categorical.append(CategoricalFeature(name=name, categories=tuple(str(c) for c in categories)))
    return FeatureTransform(numeric=numeric, categorical=categorical, missing_tokens=tuple(missing_tokens))


def categories_of(values: pd.Categorical | pd.Series) -> tuple[str, ...]:
    """The categories a ``OneHotEncoder`` after constant ``missing`` imputation learns from these values.

    That is the sorted distinct values present, plus ``missing`` when a value is missing.
    """
    if isinstance(values, pd.Series):
        values = values.array
    counts = np.bincount(np.asarray(values.codes) + 1, minlength=len(values.categories) + 1)
    present = {str(c) for c, n in zip(values.categories, counts[1:]) if n}
    if counts[0]:
        present.add(MISSING_CATEGORY)
    return tuple(sorted(present))


def fit_feature_transform(
    columns: Mapping[str, Any],
    spec: FeatureSpec,
    missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS,
) -> FeatureTransform:
    """Fits the preprocessing on prepared training columns (see the module docstring).

    Args:
        columns: Training rows as :func:`prepare_columns` returns them.
        spec: The feature specification.
        missing_tokens: Category values meaning "not given", recorded in the transform.

    Returns:
        The fitted transform, equal to :func:`export_transform` of a fitted
        :func:`build_column_transformer`.
    """
    numeric = []
    booleans = set(spec.boolean)
    for name in spec.numeric + spec.boolean:
        values = np.asarray(columns[name], dtype=np.float64)
        # SimpleImputer's median is the median of the non-missing values, 0 when there are none
        # (keep_empty_features); numpy's partition-based nanmedian computes it without
        # SimpleImputer's masked-array sort, which costs seconds on millions of rows.
        median = float(np.nanmedian(values)) if not np.isnan(values).all() else 0.0
        scaler = StandardScaler().fit(np.where(np.isnan(values), median, values).reshape(-1, 1))
        numeric.append(NumericFeature(name=name, median=median, mean=float(scaler.mean_[0]),
                                      scale=float(scaler.scale_[0]), boolean=name in booleans))
    categorical = [CategoricalFeature(name, categories_of(columns[name])) for name in spec.categorical]
    return FeatureTransform(numeric=numeric, categorical=categorical, missing_tokens=tuple(missing_tokens))
