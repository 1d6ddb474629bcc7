"""The scoring job end to end: features for one date, drift check, scores and reasons, history."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from healthscore.config import Config
from healthscore.dataset import build_dataset
from healthscore.io import atomic_path
from healthscore.scoring.batch import DEFAULT_CHUNK, ScoreRun, load_model, metadata_path_for, read_scores, score_frame
from healthscore.scoring.drift import drift_report
from healthscore.scoring.history import record_run

DEFAULT_MODEL = "models:/customer-health@champion"
DEFAULT_HISTORY = Path("scores.duckdb")


def score_accounts(
    output: Path,
    model: str = DEFAULT_MODEL,
    config: Config | None = None,
    as_of: dt.date | None = None,
    frame: pd.DataFrame | None = None,
    history: Path | None = DEFAULT_HISTORY,
    chunk_size: int = DEFAULT_CHUNK,
    max_rejected_share: float = 0.01,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScoreRun:
    """Score the base at `as_of` from the raw tables of `config` (built by the same code as the
    training data) or an already built `frame` (a snapshot table), and record it in `history`."""
    say = progress or (lambda *_: None)
    health_model, ref = load_model(model)
    if config is not None:
        say("building metrics", 0, 1)
        frame = build_dataset(config, as_of_dates=[as_of]).frame
    elif frame is None:
        raise ValueError("score needs a config (raw tables) or a frame of metrics")
    frame = frame.reset_index(drop=True)
    run = score_frame(health_model, ref, frame, output, as_of, chunk_size, max_rejected_share,
                      progress=lambda done, total: say("scoring", done, total))
    say("checking drift", 0, 1)
    scored = read_scores(output, ["churn_probability"])
    drift = drift_report(health_model, frame.drop(index=run.rejected["row"] - 1), scored["churn_probability"].to_numpy())
    run.metadata["drift"] = drift
    with atomic_path(metadata_path_for(output)) as tmp:
        tmp.write_text(json.dumps(run.metadata, indent=1, default=str))
    if history is not None:
        record_run(history, output, run.metadata, health_model.features, drift)
    return run
