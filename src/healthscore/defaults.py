"""Default names and places, in one spot. Paths are relative to the working directory (the
project folder), as a user's checkout has them: `mlruns/` for MLflow's store, `models/` for the
exported models and `scores.duckdb` for the score history. `MLFLOW_TRACKING_URI` replaces the
MLflow store; the others are options of the commands that use them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

MODEL_NAME = "customer-health"  # the registered model
CHALLENGER, CHAMPION = "challenger", "champion"  # registry aliases
MODEL_REF = f"models:/{MODEL_NAME}@{CHAMPION}"  # what scoring uses unless told otherwise
EXPERIMENT = "healthscore"  # the MLflow experiment of training and promotion runs
MLFLOW_STORE = Path("mlruns")  # sqlite:///mlruns/mlflow.db and the artifacts beside it
EXPORT_ROOT = Path("models")  # models/<name>/v<version>/ and models/<name>/<alias>.json
HISTORY_DB = Path("scores.duckdb")
CHUNK_SIZE = 50_000  # accounts scored per chunk: memory follows the chunk
MAX_REJECTED_SHARE = 0.01  # more scoring rows rejected than this and the input is probably broken
# Dates before this are typos or placeholders (1900-01-01, 1970-01-01), not customer history:
# rejected in raw tables and snapshot tables alike, at training and at scoring.
DATE_FLOOR = dt.date(1990, 1, 1)
