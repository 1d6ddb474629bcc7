"""What a report is made from: one scoring run's file, the model that scored it, and the score
history around it. Each is checked here so that a wrong input fails with its name, not deep
inside the page building."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from healthscore.errors import ModelNotFound
from healthscore.history.changes import score_trail
from healthscore.model.estimator import HealthModel
from healthscore.registry import load_model, load_version
from healthscore.scores_file import ATTRIBUTES, NUMERIC_COLUMNS, SCORE_COLUMNS, ModelRef

HISTORY_RUNS = 24  # score history points shown per account: two years of monthly runs


def read_scores(path: str | Path) -> pd.DataFrame:
    """A scores file of one date. CSV is read as text first so that ids like 00123 and names like
    'NA Systems' survive, then the numeric columns are converted."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such scores file")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).replace("", None)
        for name in NUMERIC_COLUMNS:
            if name in frame:
                frame[name] = pd.to_numeric(frame[name], errors="coerce")
    elif path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise ValueError(f"{path}: scores files are .parquet or .csv")
    missing = [c for c in SCORE_COLUMNS if c not in frame]
    if missing:
        raise ValueError(f"{path}: not a scores file (made by `healthscore score`), missing columns {', '.join(missing)}")
    if frame.empty:
        raise ValueError(f"{path}: no scored accounts")
    frame["account_id"] = frame["account_id"].astype(str)
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    dates = frame["as_of"].dropna().unique()
    if len(dates) > 1:
        raise ValueError(f"{path}: scores of {len(dates)} dates; a report shows one scoring run")
    if frame["account_id"].duplicated().any():
        raise ValueError(f"{path}: accounts appear more than once, e.g. {frame.loc[frame['account_id'].duplicated(), 'account_id'].iloc[0]}")
    for attribute in ATTRIBUTES:
        if attribute not in frame:
            frame[attribute] = None
    return frame.reset_index(drop=True)


def resolve_model(scores: pd.DataFrame, ref: str | None = None) -> tuple[HealthModel, ModelRef]:
    """The model named in the scores (its export under models/, else the registry), or `ref`.
    Another model than the one that scored would show wrong percentiles and facts, so it fails."""
    pairs = scores[["model_name", "model_version"]].drop_duplicates()
    if len(pairs) != 1:
        raise ValueError(f"the scores come from {len(pairs)} models; a report shows one model's run")
    name, version = (str(v) for v in pairs.iloc[0])
    try:
        model, found = load_model(ref) if ref is not None else load_version(name, version)
    except ModelNotFound as exc:
        raise ValueError(f"cannot load the model {ref or f'{name} v{version}'} that scored these accounts ({exc}); "
                         "pass the right one with --model") from None
    if found.version != "local" and (found.name, found.version) != (name, version):
        raise ValueError(f"--model {ref} is {found.name} version {found.version}, but the scores were made by {name} version {version}")
    return model, found


def read_runs(db_path: str | Path, as_of: dt.date) -> pd.DataFrame:
    """Every account's score at the last HISTORY_RUNS scoring dates up to `as_of` (the latest run
    of a date counts, as everywhere in the history)."""
    return score_trail(db_path, as_of, HISTORY_RUNS)
