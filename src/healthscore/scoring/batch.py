"""The scoring job: every account gets a calibrated score, a tier and the reasons behind it.

Input accounts = scored rows + rejected rows: a row that cannot be scored goes to the rejection
file beside the output with its reason (with the raw-table rows that the source checks set
aside, when the input was built from raw tables). Rows are read and scored in chunks so memory follows the
chunk, and the output appears only when complete (written to a temporary file, then renamed).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from healthscore.defaults import CHUNK_SIZE, MAX_REJECTED_SHARE
from healthscore.errors import REJECTION_COLUMNS, Reason, TooManyRejected, no_rejections
from healthscore.io import atomic_path, temporary_beside
from healthscore.model.estimator import HealthModel
from healthscore.model.reasons import scores_with_reasons, unseen_categories
from healthscore.scores_file import TIERS, ModelRef, metadata_path_for, rejected_path_for, scored_now
from healthscore.scoring.chunks import Chunk, ScoringInput, row_keys
from healthscore.scoring.drift import DriftCheck
from healthscore.scoring.inputs import FrameInput


def rejections(model: HealthModel, table: str, frame: pd.DataFrame, duplicates: set[str], by_as_of: bool = True) -> pd.DataFrame:
    """Rows of a chunk that cannot be scored and why. Missing metric values are legal (LightGBM
    handles them); `duplicates` are the keys the whole input repeats (see `duplicate_keys`)."""
    found = []
    ids = frame["account_id"] if "account_id" in frame else pd.Series(pd.NA, index=frame.index, dtype="string")
    missing_id = ids.isna() | (ids.astype("string").str.strip() == "")
    found.append(pd.DataFrame({"row": frame.index[missing_id], "column": "account_id", "value": None,
                               "code": str(Reason.MISSING_ID), "reason": "missing account id"}))
    dupes = row_keys(ids, frame.get("as_of") if by_as_of else None).isin(duplicates).fillna(False) & ~missing_id
    found.append(pd.DataFrame({"row": frame.index[dupes], "column": "account_id", "value": ids[dupes].astype(str),
                               "code": str(Reason.DUPLICATE_ID), "reason": "duplicate account id"}))
    for f in model.features:
        if f.code not in frame:
            raise ValueError(f"input has no column {f.code!r} that the model needs")
        if f.kind == "numeric":
            raw = frame[f.code]
            numeric = pd.to_numeric(raw, errors="coerce")
            bad = (raw.notna() & numeric.isna()) | np.isinf(numeric.fillna(0).astype(float))
            found.append(pd.DataFrame({"row": frame.index[bad], "column": f.code, "value": raw[bad].astype(str),
                                       "code": str(Reason.NOT_A_NUMBER), "reason": "not a finite number"}))
    found = [f for f in found if len(f)]
    if not found:
        return no_rejections()
    out = pd.concat(found, ignore_index=True).drop_duplicates("row", keep="first")
    out["account_id"] = ids.loc[out["row"]].to_numpy()
    out["table"] = table
    return out[REJECTION_COLUMNS].sort_values("row", kind="stable").reset_index(drop=True)


@dataclass
class ScoreRun:
    rejected_path: Path | None
    metadata: dict


class _ChunkWriter:
    """Appends chunks to a temporary Parquet or CSV file beside `path`; `close` moves it to where
    it belongs (the path, or a failed run's diagnostics folder) or deletes it."""

    def __init__(self, path: Path):
        self.path, self.csv = path, path.suffix.lower() == ".csv"
        self.tmp = temporary_beside(path)
        self._parquet: pq.ParquetWriter | None = None
        self.rows = 0

    def write(self, frame: pd.DataFrame) -> None:
        if self.csv:
            frame.to_csv(self.tmp, index=False, mode="w" if not self.rows else "a", header=not self.rows)
        else:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:  # one schema for the file; a column no row of this chunk filled is text
                schema = pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in table.schema])
                self._parquet = pq.ParquetWriter(self.tmp, schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        self.rows += len(frame)

    def close(self, to: Path | None) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if to is not None and self.rows:
            os.replace(self.tmp, to)
        self.tmp.unlink(missing_ok=True)


class Clock:
    """Seconds per step of the run, for the metadata: where the time went."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start

    def timed(self, step: str, items: Iterable) -> Iterator:
        """`items`, with the time spent producing them counted under `step`."""
        items = iter(items)
        while True:
            with self(step):
                item = next(items, None)
            if item is None:
                return
            yield item


class _Riskiest:
    """The lowest scores seen so far, for the run's summary without reading the output again."""

    COLUMNS = ["account_id", "health_score", "tier", "reason_1_text"]

    def __init__(self, n: int = 5):
        self.n, self.rows = n, pd.DataFrame(columns=self.COLUMNS)

    def add(self, scores: pd.DataFrame) -> None:
        # ties (scores clipped at 0) go by account: the same five whatever order the chunks or partitions come in
        lowest = scores.nsmallest(self.n, "health_score", keep="all")[self.COLUMNS]
        rows = lowest if self.rows.empty else pd.concat([self.rows, lowest])
        self.rows = rows.sort_values(["health_score", "account_id", "reason_1_text"], kind="stable").head(self.n)

    def records(self) -> list[dict]:
        return self.rows.astype(object).where(self.rows.notna(), None).to_dict("records")


class RunTally:
    """What a run adds up as it goes, chunk by chunk (or, on Spark, partition by partition, then
    merged): counts, tiers, drift, the riskiest accounts, categories training never saw."""

    def __init__(self, model: HealthModel):
        self.scored = self.rejected = 0
        self.tiers = dict.fromkeys(TIERS, 0)
        self.drift, self.riskiest = DriftCheck(model), _Riskiest()
        self.unseen: dict[str, dict[str, int]] = {}  # categorical metric -> value training never saw -> rows

    def add(self, model: HealthModel, good: pd.DataFrame, scores: pd.DataFrame) -> None:
        self.drift.add(good, scores["churn_probability"].to_numpy())
        self._add_unseen(unseen_categories(model, good))
        self.riskiest.add(scores)
        for tier, n in scores["tier"].value_counts().items():
            self.tiers[tier] += int(n)
        self.scored += len(good)

    def _add_unseen(self, found: dict[str, dict[str, int]]) -> None:
        for code, counts in found.items():
            for value, n in counts.items():
                self.unseen.setdefault(code, {}).setdefault(value, 0)
                self.unseen[code][value] += n

    def to_dict(self) -> dict:
        """Plain data (JSON), to travel from where it was added up to where it is merged."""
        return {"scored": self.scored, "rejected": self.rejected, "tiers": self.tiers, "drift": self.drift.counts(),
                "riskiest": self.riskiest.records(), "unseen": self.unseen}

    def merge(self, part: dict) -> None:
        self.scored += part["scored"]
        self.rejected += part["rejected"]
        for tier, n in part["tiers"].items():
            self.tiers[tier] += n
        self.drift.merge(part["drift"])
        if part["riskiest"]:
            self.riskiest.add(pd.DataFrame(part["riskiest"], columns=_Riskiest.COLUMNS))
        self._add_unseen(part["unseen"])


def score_chunk(model: HealthModel, ref: ModelRef, table: str, chunk: Chunk, duplicates: set[str], by_as_of: bool,
                as_of: dt.date | None, scored_at: str, previous_tiers: dict[str, str] | None, tally: RunTally,
                clock: Clock) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One chunk of the input: its scores-file rows and its rejections (typed as in the file),
    added to the tally. The local job and every Spark partition score through here."""
    bad = rejections(model, table, chunk.rows, duplicates, by_as_of)
    rejected = typed_rejections([chunk.rejected, bad]) if len(bad) or len(chunk.rejected) else no_rejections()
    tally.rejected += len(rejected)
    good = chunk.rows.drop(index=bad["row"])
    if not len(good):
        return pd.DataFrame(), rejected
    with clock("scoring and reasons"):
        scores = scores_with_reasons(model, ref, good, as_of, scored_at, previous_tiers)
    with clock("drift and summary"):
        tally.add(model, good, scores)
    return scores, rejected


def run_metadata(model: HealthModel, ref: ModelRef, description: str, output: Path, as_of: dt.date | None, scored_at: str,
                 previous_tiers: dict[str, str] | None, tally: RunTally, input_rows: int, rejected_source_rows: int,
                 timings: dict[str, float]) -> dict:
    """The run's metadata (`<output>.meta.json` and the history's `runs`)."""
    return {
        "model": ref.__dict__, "as_of": str(as_of) if as_of else None, "scored_at": scored_at, "input": description,
        "input_rows": input_rows, "scored_rows": tally.scored, "rejected_rows": tally.rejected,
        "rejected_source_rows": rejected_source_rows, "tiers": tally.tiers,
        "tier_stability": {"margin": model.tier_policy.stability_margin, "previous_tiers": len(previous_tiers or {})},
        "seconds": round(sum(timings.values()), 2), "timings": {step: round(s, 2) for step, s in timings.items()},
        "output": str(output), "drift": tally.drift.report(), "riskiest": tally.riskiest.records(), "unseen_categories": tally.unseen,
    }


def run_failure(metadata: dict, max_rejected_share: float) -> str | None:
    """Why a run must not publish its scores: nothing scored, or too many rows rejected."""
    done, rejected = metadata["input_rows"], metadata["rejected_rows"]
    if metadata["scored_rows"] == 0:
        return f"{metadata['input']}: none of its {done:,} rows could be scored"
    if done and rejected / done > max_rejected_share:
        return f"{rejected} of {done} rows ({rejected / done:.1%}) could not be scored, more than the allowed {max_rejected_share:.1%}"
    return None


def score_input(
    model: HealthModel,
    ref: ModelRef,
    source: ScoringInput,
    output: Path,
    as_of: dt.date | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_rejected_share: float = MAX_REJECTED_SHARE,
    progress: Callable[[int, int], None] | None = None,
    previous_tiers: dict[str, str] | None = None,
) -> ScoreRun:
    """Score every row of `source` into `output` (.parquet/.csv) a chunk at a time, with the
    rejections beside it and the run's metadata (counts, tiers, drift, timings, the riskiest).
    Raw-table rows the source checks set aside lead the rejection file; they are counted apart
    (`rejected_source_rows`), as they are not rows of the scoring input."""
    clock, scored_at = Clock(), scored_now()
    by_as_of = as_of is None  # a given as_of is every row's: an account twice is then a duplicate
    with clock("finding duplicates"):
        duplicates = source.duplicate_keys(by_as_of)
    tally, done = RunTally(model), 0
    reject_file = rejected_path_for(output)
    writer, reject_writer = _ChunkWriter(output), _ChunkWriter(reject_file)
    try:
        if len(source.rejections):
            reject_writer.write(typed_rejections([source.rejections]))
        for chunk in clock.timed("reading", source.chunks(chunk_size)):
            scores, bad = score_chunk(model, ref, source.description, chunk, duplicates, by_as_of, as_of, scored_at,
                                      previous_tiers, tally, clock)
            if len(bad):
                reject_writer.write(bad)
            if len(scores):
                with clock("writing"):
                    writer.write(scores)
            done += len(chunk.rows) + len(chunk.rejected)
            if progress:
                progress(done, source.rows)
    except BaseException:
        writer.close(None)
        reject_writer.close(None)
        raise
    metadata = run_metadata(model, ref, source.description, output, as_of, scored_at, previous_tiers, tally, done,
                            source.rejected_source_rows, source.timings | clock.seconds)
    if source.reference_date:
        metadata["reference_date"] = str(source.reference_date)
    failure = run_failure(metadata, max_rejected_share)
    if failure:  # no output at all; what was found goes where the user is told, not beside the output
        diagnostics = Path(tempfile.mkdtemp(prefix=f"healthscore-failed-{output.stem}-"))
        writer.close(None)
        reject_writer.close(diagnostics / reject_file.name)
        (diagnostics / metadata_path_for(output).name).write_text(json.dumps(metadata, indent=1, default=str))
        raise TooManyRejected(f"{failure}; no scores written; the rejected rows and the run's metadata are in {diagnostics}",
                              diagnostics)
    writer.close(output)
    reject_writer.close(reject_file)
    if not reject_writer.rows:
        reject_file.unlink(missing_ok=True)  # a rejection file from an earlier run would mislead
    with atomic_path(metadata_path_for(output)) as tmp:
        tmp.write_text(json.dumps(metadata, indent=1, default=str))
    return ScoreRun(reject_file if reject_writer.rows else None, metadata)


def typed_rejections(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """One chunk's rejections in input order, typed alike in every chunk (one file schema)."""
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True).sort_values(["table", "row"], kind="stable")
    return frame.astype({"row": "int64"} | {c: "str" for c in REJECTION_COLUMNS if c != "row"})


def score_frame(model: HealthModel, ref: ModelRef, frame: pd.DataFrame, output: Path, as_of: dt.date | None = None,
                chunk_size: int = CHUNK_SIZE, max_rejected_share: float = MAX_REJECTED_SHARE,
                progress: Callable[[int, int], None] | None = None) -> ScoreRun:
    """`score_input` for a frame in memory (metrics as built for training)."""
    return score_input(model, ref, FrameInput(frame), output, as_of, chunk_size, max_rejected_share, progress)
