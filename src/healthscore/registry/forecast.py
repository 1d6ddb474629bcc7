"""Forecast runs in MLflow: the settings, the backtest's figures (summary and per date) and the
forecast's files, tagged as a forecast so they sit apart from the training runs."""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from healthscore.registry.store import connect


def log_forecast(params: dict, summary: dict[str, float], backtest: pd.DataFrame, files: list[Path]) -> str:
    """Log one forecast run; returns its run id. Each backtest date is one step of the per-date
    metrics, so MLflow plots the forecast against what happened over time."""
    connect()
    with mlflow.start_run(run_name=f"forecast {params['as_of']}", tags={"healthscore.kind": "forecast"}) as run:
        mlflow.log_params(params)
        mlflow.log_metrics(summary)
        for step, row in enumerate(backtest.itertuples(index=False)):
            mlflow.log_metrics({name: float(getattr(row, name)) for name in
                                ("expected_churned_mrr", "actual_churned_mrr", "expected_churned_accounts", "actual_churned_accounts")},
                               step=step)
        with tempfile.TemporaryDirectory() as tmp:
            table = Path(tmp) / "backtest.csv"
            backtest.to_csv(table, index=False)
            mlflow.log_artifact(str(table), artifact_path="forecast")
        for path in files:
            mlflow.log_artifact(str(path), artifact_path="forecast")
    return run.info.run_id
