"""Reference predictors for the serving benchmark (benchmark code only; never shipped).

``SeedStylePredictor`` is what the seed project served: a pandas DataFrame per request, a pickled
scikit-learn ``ColumnTransformer`` and a pickled ``XGBRegressor``. Pickle is acceptable here and
only here, to measure the cost of the approach leadscore replaces. ``NoopPredictor`` returns a
constant: the floor of the CPR server itself.
"""

from __future__ import annotations

import os
import pickle
from typing import Any

import pandas as pd
from google.cloud.aiplatform.prediction.predictor import Predictor


class SeedStylePredictor(Predictor):
    """pandas → pickled ColumnTransformer → XGBRegressor.predict, as in the seed."""

    def load(self, artifacts_uri: str, **kwargs: Any) -> None:
        with open(os.path.join(artifacts_uri, "preprocessor.pkl"), "rb") as handle:
            self.preprocessor = pickle.load(handle)
        with open(os.path.join(artifacts_uri, "model.pkl"), "rb") as handle:
            self.model = pickle.load(handle)

    def preprocess(self, prediction_input: Any) -> pd.DataFrame:
        return pd.DataFrame(prediction_input["instances"])

    def predict(self, instances: pd.DataFrame) -> Any:
        return self.model.predict(self.preprocessor.transform(instances))

    def postprocess(self, prediction_results: Any) -> dict[str, Any]:
        return {"predictions": prediction_results.tolist()}


class NoopPredictor(Predictor):
    """Answers every instance with 0.0: what the server costs without any model work."""

    def load(self, artifacts_uri: str, **kwargs: Any) -> None:
        return None

    def predict(self, instances: Any) -> dict[str, Any]:
        return {"predictions": [0.0] * len(instances["instances"])}
