"""The MLflow pyfunc wrapper, logged as code ("models from code"): nothing is pickled.

MLflow runs this file when the model is loaded; `load_context` reads the saved HealthModel
(LightGBM text + JSON) from the model's artifacts.
"""

from __future__ import annotations

import mlflow
import pandas as pd

from healthscore.model.estimator import HealthModel

ARTIFACT = "health_model"


class HealthScorePyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        self.model = HealthModel.load(context.artifacts[ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        keys = [c for c in ("account_id", "as_of") if c in model_input]
        scores = self.model.score(model_input)
        return pd.concat([model_input[keys].reset_index(drop=True), scores.reset_index(drop=True)], axis=1)


mlflow.models.set_model(HealthScorePyfunc())
