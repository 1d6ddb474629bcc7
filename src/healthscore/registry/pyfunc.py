"""The MLflow pyfunc wrapper, logged as code ("models from code"): nothing is pickled.

MLflow runs this file when the model is loaded; `load_context` reads the saved HealthModel
(LightGBM text + JSON) from the model's artifacts.
"""

from __future__ import annotations

import logging
import os

import mlflow
import pandas as pd

from healthscore.model.estimator import HealthModel
from healthscore.model.reasons import scores_with_reasons
from healthscore.scores_file import ModelRef, scored_now

ARTIFACT = "health_model"


def registered_version(name: str, run_id: str) -> str:
    """The registry numbers a model only after it has been logged, so the number cannot be saved
    inside it: it is looked up, by run id, in the registry the model was loaded from (serving a
    `models:/` URI needs that registry anyway). '' when no registry is configured or it has no
    version of this run."""
    if not (os.environ.get("MLFLOW_TRACKING_URI") or os.environ.get("MLFLOW_REGISTRY_URI")):
        return ""
    try:
        versions = mlflow.MlflowClient().search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except mlflow.exceptions.MlflowException as exc:
        logging.getLogger(__name__).warning("model version of run %s not found in the registry: %s", run_id, exc)
        return ""
    return str(max(int(v.version) for v in versions)) if versions else ""


class HealthScorePyfunc(mlflow.pyfunc.PythonModel):
    """Returns the columns of `healthscore score`, reasons included."""

    def load_context(self, context) -> None:
        self.model = HealthModel.load(context.artifacts[ARTIFACT])
        name, run_id = self.model.provenance_.model_name, self.model.provenance_.run_id
        self.ref = ModelRef(name, registered_version(name, run_id), run_id)

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return scores_with_reasons(self.model, self.ref, model_input.reset_index(drop=True), None, scored_now())


mlflow.models.set_model(HealthScorePyfunc())
