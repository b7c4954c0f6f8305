"""Fitting the preprocessing with scikit-learn and exporting it as the serving contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from predictor.transform import (
    DEFAULT_MISSING_TOKENS,
    MISSING_CATEGORY,
    CategoricalFeature,
    FeatureTransform,
    NumericFeature,
    boolean_value,
)
from training.features import FeatureSpec


def prepare_frame(
    frame: pd.DataFrame, spec: FeatureSpec, missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS
) -> pd.DataFrame:
    """Brings feature columns to the types scikit-learn expects, exactly as serving reads them.

    Numeric and boolean columns become float64 with NaN for missing; categorical columns become
    object columns of ``str`` with NaN for missing and for placeholder tokens such as ``Select``.
    """
    prepared = {}
    tokens = list(missing_tokens)
    for column in spec.numeric:
        prepared[column] = frame[column].astype("float64").to_numpy(na_value=np.nan)
    for column in spec.boolean:
        series = frame[column]
        if pd.api.types.is_bool_dtype(series.dtype):
            prepared[column] = series.astype("float64").to_numpy(na_value=np.nan)
        else:
            prepared[column] = np.array([boolean_value(v) for v in series.astype("object")], dtype=np.float64)
    for column in spec.categorical:
        series = frame[column]
        missing = (series.isna() | series.isin(tokens)).to_numpy()
        values = series.astype("object").map(str).to_numpy(dtype=object)
        values[missing] = np.nan
        prepared[column] = values
    return pd.DataFrame(prepared, index=frame.index)[spec.features]


def build_column_transformer(spec: FeatureSpec) -> ColumnTransformer:
    """The seed's preprocessing: median + standard scale, constant ``missing`` + one-hot.

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


def fit_transform(
    prepared: pd.DataFrame, spec: FeatureSpec, missing_tokens: Sequence[str] = DEFAULT_MISSING_TOKENS
) -> tuple[FeatureTransform, sparse.csr_matrix]:
    """Fits the preprocessing on prepared training rows.

    Returns:
        The exported transform and the training matrix (CSR).
    """
    column_transformer = build_column_transformer(spec)
    matrix = column_transformer.fit_transform(prepared)
    return export_transform(column_transformer, spec, missing_tokens), sparse.csr_matrix(matrix)
