"""The MLflow pyfunc wrapper, logged as code ("models from code"): nothing is pickled.

MLflow runs this file when the model is loaded; `load_context` reads the saved HealthModel
(LightGBM text + JSON) from the model's artifacts.
"""

from __future__ import annotations

import datetime as dt

import mlflow
import pandas as pd

from healthscore.model.estimator import HealthModel

ARTIFACT = "health_model"


class HealthScorePyfunc(mlflow.pyfunc.PythonModel):
    """Returns the columns of `healthscore score`, reasons included. The registry version is
    assigned after logging, so served rows carry the model's run id and an empty version."""

    def load_context(self, context) -> None:
        from healthscore.scoring.batch import ModelRef

        self.model = HealthModel.load(context.artifacts[ARTIFACT])
        meta = self.model.metadata_
        self.ref = ModelRef(meta.get("model_name", ""), "", meta.get("run_id", ""))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from healthscore.scoring.batch import score_rows

        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        return score_rows(self.model, self.ref, model_input.reset_index(drop=True), None, now)


mlflow.models.set_model(HealthScorePyfunc())
