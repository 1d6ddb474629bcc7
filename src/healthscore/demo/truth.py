"""The demo's ground truth as an extra contender for training: the generator's true churn
probabilities, shown beside the model on the test slice (the "oracle"), never shipped. Core
training knows nothing of it; the CLI brings it when the data is a demo folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.model.training import ExtraContender

ORACLE = "oracle"
TRUTH_FILE = Path("ground_truth") / "churn_probability.parquet"  # written by generate_demo


def truth_contender(*folders: Path | None) -> ExtraContender | None:
    """The oracle, when one of `folders` (a config's folder, a dataset's folder) holds the truth."""
    found = next((Path(f) / TRUTH_FILE for f in folders if f is not None and (Path(f) / TRUTH_FILE).exists()), None)
    if found is None:
        return None
    truth = pd.read_parquet(found).rename(columns={"p_churn_90d": "p"})
    truth["as_of"] = pd.to_datetime(truth["as_of"]).dt.date
    return ExtraContender(ORACLE, "Oracle (true probability)", lambda rows: _lookup(truth, rows))


def _lookup(truth: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray | None:
    """The true probabilities of these rows; None unless every row has one."""
    if "as_of" not in rows:
        return None
    merged = rows[["account_id", "as_of"]].merge(truth, on=["account_id", "as_of"], how="left")
    return None if merged["p"].isna().any() else merged["p"].to_numpy()
