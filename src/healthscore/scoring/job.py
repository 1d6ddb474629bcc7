"""The scoring job end to end: the accounts to score, scores and reasons with drift, history."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from healthscore.config import Config
from healthscore.scoring.batch import DEFAULT_CHUNK, MAX_REJECTED_SHARE, ScoreRun, load_model, score_input
from healthscore.scoring.history import DEFAULT_DB, record_run
from healthscore.scoring.inputs import FrameInput, RawTablesInput, ScoringInput, open_table

DEFAULT_MODEL = "models:/customer-health@champion"


def score_accounts(
    output: Path,
    model: str = DEFAULT_MODEL,
    config: Config | None = None,
    as_of: dt.date | None = None,
    table: Path | pd.DataFrame | None = None,
    id_column: str | None = None,
    as_of_column: str | None = None,
    history: Path | None = DEFAULT_DB,
    chunk_size: int = DEFAULT_CHUNK,
    max_rejected_share: float = MAX_REJECTED_SHARE,
    progress: Callable[[str, int, int], None] | None = None,
) -> ScoreRun:
    """Score the base at `as_of` from the raw tables of `config` (built by the same code as the
    training data), or a `table`: a dataset file, the user's own snapshot table, or a frame.
    The run is recorded in `history` (None: not recorded)."""
    say = progress or (lambda *_: None)
    health_model, ref = load_model(model)
    source: ScoringInput
    if config is not None:
        if as_of is None:
            raise ValueError("scoring from the raw tables needs an as_of date")
        say("building metrics", 0, 1)
        source = RawTablesInput(config, as_of)
    elif isinstance(table, pd.DataFrame):
        source = FrameInput(table)
    elif table is not None:
        source = open_table(Path(table), id_column, health_model.features, as_of_column)
    else:
        raise ValueError("score needs a config (raw tables) or a table of metrics")
    run = score_input(health_model, ref, source, output, as_of, chunk_size, max_rejected_share,
                      progress=lambda done, total: say("scoring", done, total))
    if history is not None:
        record_run(history, output, run.metadata, health_model.features)
    return run

