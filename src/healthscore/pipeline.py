"""The public Python API: the pipeline's steps exactly as the CLI runs them, for notebooks and
scheduled jobs.

    load_dataset -> train_and_register -> promote -> score_accounts -> write_report

Each step is one function over the layers below (build, model, registry, scoring, history,
report); the CLI only parses options and prints what these return.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.build.raw import build_dataset
from healthscore.build.snapshot import MixedColumns, build_snapshot_dataset
from healthscore.build.spark import spark_session
from healthscore.config import Config, load_config
from healthscore.dataset import Dataset, read_dataset
from healthscore.defaults import CHUNK_SIZE, DATE_FLOOR, HISTORY_DB, MAX_REJECTED_SHARE, MODEL_REF
from healthscore.errors import DataError, ModelQualityError, UserError
from healthscore.history.store import check_history, previous_tiers, record_run
from healthscore.io import check_outputs
from healthscore.model.artefacts import write_training_artefacts
from healthscore.model.training import ExtraContender, TrainingResult, train
from healthscore.registry import RegisteredModel, load_model, log_rejected, log_training, promote
from healthscore.report import write_report
from healthscore.scores_file import metadata_path_for, rejected_path_for
from healthscore.scoring.batch import ScoreRun, score_input
from healthscore.scoring.chunks import ScoringInput
from healthscore.scoring.inputs import FrameInput, RawTablesInput, open_table
from healthscore.scoring.spark import check_folder_output, score_on_spark
from healthscore.settings import TrainingConfig

__all__ = ["TrainingOutcome", "load_dataset", "promote", "score_accounts", "train_and_register", "write_report"]


def load_dataset(
    config: Config | str | Path | None = None,
    dataset: str | Path | None = None,
    table: str | Path | None = None,
    id_column: str | None = None,
    label_column: str | None = "churned",
    as_of_column: str | None = None,
    progress: Callable[[str], None] | None = None,
    reference_date: dt.date | None = None,
    date_floor: dt.date = DATE_FLOOR,
    mixed_columns: MixedColumns = "error",
) -> Dataset:
    """The modelling dataset from one of: a file written by `build-dataset` (`dataset`), the
    user's own snapshot table (`table`, with its id and label columns; a table without as_of counts
    its dates back from `reference_date`, or one derived robustly; dates before `date_floor` are
    rejected; a column mostly of numbers or dates with too many that are not is an error, or with
    `mixed_columns` "text" read as text), or the raw tables of a `config`, built now."""
    if (dataset is not None) + (table is not None) > 1 or (config is None and dataset is None and table is None):
        raise UserError("give a config (raw tables), a dataset file, or a snapshot table (one of them)")
    if dataset is not None:
        return read_dataset(dataset)
    if table is not None:
        if not id_column:
            raise UserError("a snapshot table needs its id column (--id-column)")
        return build_snapshot_dataset(table, id_column, label_column, as_of_column, reference_date, date_floor, mixed_columns)
    if not isinstance(config, Config):
        config = load_config(config)
    return build_dataset(config, progress=progress)


@dataclass
class TrainingOutcome:
    """A trained model and what became of it: registered as the challenger, or rejected by the
    quality gate (logged as a rejected run, never registered, so no alias can point at it)."""

    result: TrainingResult
    registered: RegisteredModel | None
    artefacts: dict[str, Path]  # file name -> path (gone with the temporary folder unless one was given)
    rejected_run_id: str | None = None
    rejection: str | None = None  # why the gate refused it

    @property
    def passed(self) -> bool:
        return self.registered is not None


def train_and_register(
    dataset: Dataset,
    settings: TrainingConfig | None = None,
    name: str | None = None,
    extra: Sequence[ExtraContender] = (),
    artefacts: str | Path | None = None,
) -> TrainingOutcome:
    """Train, write the artefacts (into `artefacts`, or a temporary folder), run the quality
    gate, then log and register (gate passed) or log as rejected (gate failed). `extra`
    contenders are compared, never shipped."""
    check_trainable(dataset, name)
    result = train(dataset, settings or TrainingConfig(), list(extra))
    info = {"digest": result.dataset_digest, "origin": dataset.spec.origin, "horizon_days": dataset.spec.horizon_days}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(artefacts) if artefacts is not None else Path(tmp)
        files = write_training_artefacts(result, folder, info)
        try:
            result.check_quality()
        except ModelQualityError as exc:
            run_id = log_rejected(result, dataset, folder, str(exc), name)
            return TrainingOutcome(result, None, files, run_id, str(exc))
        return TrainingOutcome(result, log_training(result, dataset, folder, name), files)


MIN_CLASS_ROWS = 10  # labelled rows of each class below which cross-fitting folds and a test slice cannot all see both


def check_trainable(dataset: Dataset, name: str | None = None) -> None:
    """What would otherwise fail deep inside training (a scikit-learn or MLflow message), said up
    front in the user's terms: the model name, the labels, the feature values."""
    if name is not None and ("/" in name or ":" in name):
        raise UserError(f"--name {name!r}: a model name cannot contain '/' or ':'")
    spec, frame = dataset.spec, dataset.frame
    if not spec.label_column or spec.label_column not in frame:
        raise DataError("the dataset has no churn label column: it can be scored, not trained on")
    y = dataset.labelled[spec.label_column].astype(bool)
    churned, retained = int(y.sum()), int((~y).sum())
    if min(churned, retained) < MIN_CLASS_ROWS:
        raise DataError(f"{len(y):,} labelled rows ({churned:,} churned, {retained:,} retained): a model needs at least "
                        f"{MIN_CLASS_ROWS} of each (every cross-fitting fold and the test slice need both)")
    numeric = [f.code for f in spec.features if f.kind == "numeric"]
    infinite = np.isinf(frame[numeric].astype(float))
    for code in infinite.columns[infinite.any()]:
        rows = np.flatnonzero(infinite[code]) + 1
        raise DataError(f"feature {code!r}: {len(rows):,} infinite value(s) (rows {', '.join(map(str, rows[:5]))}): no count or "
                        "amount is infinite; rebuild the dataset (build-dataset rejects such rows)")


def score_accounts(
    output: Path,
    model: str = MODEL_REF,
    config: Config | None = None,
    as_of: dt.date | None = None,
    table: Path | pd.DataFrame | None = None,
    id_column: str | None = None,
    as_of_column: str | None = None,
    history: Path | None = HISTORY_DB,
    chunk_size: int = CHUNK_SIZE,
    max_rejected_share: float = MAX_REJECTED_SHARE,
    progress: Callable[[str, int, int], None] | None = None,
    engine: str = "local",
    reference_date: dt.date | None = None,
) -> ScoreRun:
    """Score the base at `as_of` from the raw tables of `config` (built by the same code as the
    training data), or a `table`: a dataset file, the user's own snapshot table, or a frame.
    The run is recorded in `history` (None: not recorded). `engine` "spark" scores a dataset
    Parquet file or folder on the active (or a local) Spark session into a folder of parts.
    `reference_date`: the date a snapshot table's dates count back from (None: derived as in training)."""
    say = progress or (lambda *_: None)
    inputs = [table if isinstance(table, (str, Path)) else None, history,
              *([config.source_path(name) for name in config.sources] if config is not None else [])]
    if engine == "spark":
        check_folder_output(Path(output), inputs)
    else:
        check_outputs(output, {"its rejections": rejected_path_for(output), "its metadata": metadata_path_for(output)}, inputs)
    if history is not None:
        check_history(history)
    health_model, ref = load_model(model)
    # the last recorded tiers keep tiers stable run to run (the tier policy's stability margin)
    previous = previous_tiers(history, as_of) if history is not None and as_of is not None else None
    if engine == "spark":
        if not isinstance(table, (str, Path)) or reference_date is not None:
            raise UserError("--engine spark scores a dataset Parquet file or folder (--table; no --reference-date)")
        say("scoring on Spark", 0, 1)
        run = score_on_spark(spark_session(), health_model, ref, Path(table), Path(output), as_of, chunk_size, max_rejected_share,
                             previous)
    else:
        run = _score_locally(health_model, ref, output, config, as_of, table, id_column, as_of_column, chunk_size,
                             max_rejected_share, previous, say, reference_date)
    if history is not None:
        try:
            record_run(history, output, run.metadata, health_model.features)
        except BaseException:  # all or nothing: a run the history does not hold leaves no files either
            for written in (output, rejected_path_for(output), metadata_path_for(output)):
                if written.is_dir():
                    shutil.rmtree(written)
                written.unlink(missing_ok=True)
            raise
    return run


def _score_locally(health_model, ref, output, config, as_of, table, id_column, as_of_column, chunk_size, max_rejected_share,
                   previous, say, reference_date=None) -> ScoreRun:
    source: ScoringInput
    if config is not None:
        if as_of is None:
            raise UserError("scoring from the raw tables needs an as_of date (--as-of)")
        if reference_date is not None:
            raise UserError("a reference date is for a snapshot table (--table); the raw tables are observed at --as-of")
        say("building metrics", 0, 1)
        source = RawTablesInput(config, as_of)
    elif isinstance(table, pd.DataFrame):
        source = FrameInput(table)
    elif table is not None:
        source = open_table(Path(table), id_column, health_model.features, as_of_column, reference_date)
    else:
        raise UserError("score needs a config (raw tables) or a table of metrics")
    return score_input(health_model, ref, source, output, as_of, chunk_size, max_rejected_share,
                       progress=lambda done, total: say("scoring", done, total), previous_tiers=previous)
