"""Where MLflow keeps runs and registered models, and the aliases that name versions.

The default store lives in the project folder (tracking `sqlite:///mlruns/mlflow.db`, artifacts
under `mlruns/<experiment id>/`); `MLFLOW_TRACKING_URI` points it at a team's own server instead.
"""

from __future__ import annotations

import os

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from healthscore.defaults import EXPERIMENT, MLFLOW_STORE


def tracking_uri() -> str:
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return uri
    store = MLFLOW_STORE.resolve()
    store.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{store / 'mlflow.db'}"


def connect() -> MlflowClient:
    """Point MLflow at the store and make sure the experiment exists; returns a client."""
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    return MlflowClient(uri, uri)


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points at; None when the model or the alias does not exist."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
