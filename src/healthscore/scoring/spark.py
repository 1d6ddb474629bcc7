"""The scoring job on Spark: the same scores, rejections and run metadata as the local job, for a
feature table that lives on a cluster.

How the work splits: the driver loads the model and ships its exported files (LightGBM text +
JSON, no pickles) to the executors; each executor rebuilds the model once per Python worker and
scores its partitions with `mapInPandas`, an Arrow batch (`chunk_size` rows) at a time, through
`score_chunk`, the local job's own code (checks, scores, reasons, tally). A partition hands back
its scores, its rejections and its tally (counts, tiers, drift bins, riskiest, unseen values);
the driver merges the tallies, so drift is computed from partition aggregates, never from the
rows. Input row numbers (for the rejections) come from each Parquet file's row index, and
duplicate keys from one aggregation over the key columns. Output: folders of Parquet parts,
one per partition, with exactly the local files' columns and types.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from healthscore.dataset import conform
from healthscore.errors import REJECTION_COLUMNS, DataError, TooManyRejected, UserError
from healthscore.io import atomic_path
from healthscore.model.estimator import HealthModel
from healthscore.scores_file import ATTRIBUTES, SCORE_COLUMNS, ModelRef, metadata_path_for, rejected_path_for, scored_now
from healthscore.scoring.batch import Clock, RunTally, ScoreRun, run_failure, run_metadata, score_chunk
from healthscore.scoring.chunks import Chunk, row_keys

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# the scores file's types as Spark writes them: the local job writes scored_at as its ISO text
_SPARK_TYPES = {"VARCHAR": "string", "JSON": "string", "TIMESTAMP": "string", "DATE": "date", "DOUBLE": "double"}
SCORES = ["account_id", "as_of", *ATTRIBUTES, *(c for c in SCORE_COLUMNS if c not in ("account_id", "as_of"))]
_REJECTED = {c: f"_rejected_{c}" for c in REJECTION_COLUMNS}
_MODELS: dict[str, HealthModel] = {}  # per Python worker: the model rebuilt once from its files


def model_files(model: HealthModel) -> dict[str, bytes]:
    """The model as its exported files, the form it travels to the executors in."""
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        return {f.name: f.read_bytes() for f in Path(tmp).iterdir()}


def model_from_files(files: dict[str, bytes]) -> HealthModel:
    key = hashlib.sha256(b"".join(files[name] for name in sorted(files))).hexdigest()
    if key not in _MODELS:
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            _MODELS[key] = HealthModel.load(tmp)
    return _MODELS[key]


def scores_schema(dates: str = "date") -> str:
    """The scores file as a Spark schema (DDL). `mlflow.pyfunc.spark_udf` returns primitive types
    only: its `result_type` is `scores_schema(dates="string")` (as_of as ISO text)."""
    return ", ".join(f"`{c}` {dates if c == 'as_of' else _SPARK_TYPES[SCORE_COLUMNS.get(c, 'VARCHAR')]}" for c in SCORES)


def _schema() -> str:
    rejected = [f"`{name}` {'long' if c == 'row' else 'string'}" for c, name in _REJECTED.items()]
    return ", ".join(["_kind string", scores_schema(), *rejected, "_tally string"])


def _wide(columns: dict[str, pd.Series | list], rows: int, kind: str) -> pd.DataFrame:
    """A frame of every output column (those of other kinds empty), as mapInPandas returns them."""
    names = ["_kind", *SCORES, *_REJECTED.values(), "_tally"]
    empty = pd.Series([None] * rows, dtype=object)
    out = {name: pd.Series(columns[name]).reset_index(drop=True) if name in columns else empty for name in names}
    return _plain_text(pd.DataFrame(out | {"_kind": [kind] * rows}))


def _plain_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Text as Python strings and None: pyspark 4.3's Arrow conversion fails on pandas 3's
    Arrow-backed strings ("Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array")."""
    text = [c for c in frame if pd.api.types.is_string_dtype(frame[c].dtype)]
    return frame.assign(**{c: frame[c].astype(object).where(frame[c].notna(), None) for c in text})


def check_folder_output(output: Path, inputs: list[Path | None]) -> None:
    """Spark writes a folder of Parquet parts: the name ends in .parquet and is no input of the run."""
    if output.suffix.lower() != ".parquet":
        raise UserError(f"--out {output}: with --engine spark the scores are a folder of Parquet parts: end the name in .parquet")
    if output.is_file():
        raise UserError(f"--out {output}: is a file; Spark writes a folder of Parquet parts there")
    if any(i is not None and Path(i).resolve() == output.resolve() for i in inputs):
        raise UserError(f"--out {output}: is an input of this run; write the output elsewhere")


def _replace_folder(staged: Path, target: Path) -> None:
    """Move a finished folder over `target` (the earlier run's output goes only once the new one is whole)."""
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old)
    else:
        os.replace(staged, target)


def _numbered(spark: SparkSession, table: Path) -> tuple[DataFrame, int]:
    """The input with `_row`, its 1-based row number across its files (sorted by name), as the
    local job numbers the rows of a file; and how many rows it has."""
    from pyspark.sql import functions as F

    try:
        frame = spark.read.parquet(str(table))
    except Exception as exc:
        raise DataError(f"{table}: Spark cannot read it as Parquet ({str(exc).splitlines()[0]})") from None
    located = frame.select("*", F.col("_metadata.file_path").alias("_file"), F.col("_metadata.row_index").alias("_index"))
    counts = sorted((r["_file"], r["count"]) for r in located.groupBy("_file").count().collect())
    starts = [0, *accumulate(n for _, n in counts)]
    offsets = spark.createDataFrame([(f, start) for (f, _), start in zip(counts, starts)], "_file string, _offset long")
    numbered = located.join(F.broadcast(offsets), "_file").withColumn("_row", F.col("_offset") + F.col("_index") + 1)
    return numbered.drop("_file", "_index", "_offset"), starts[-1]


def _duplicate_keys(frame: DataFrame, by_as_of: bool) -> set[str]:
    """Keys (`row_keys`, the local job's own) that occur more than once in the whole input."""
    if "account_id" not in frame.columns:
        return set()
    with_date = by_as_of and "as_of" in frame.columns

    def keys(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for batch in batches:
            yield pd.DataFrame({"key": row_keys(batch["account_id"], batch["as_of"] if with_date else None)})

    counted = frame.select("account_id", *(["as_of"] if with_date else [])).mapInPandas(keys, "key string").groupBy("key").count()
    return {r["key"] for r in counted.where("count > 1 AND key IS NOT NULL").collect()}


def score_on_spark(spark: SparkSession, model: HealthModel, ref: ModelRef, table: Path, output: Path, as_of: dt.date | None,
                   chunk_size: int, max_rejected_share: float, previous_tiers: dict[str, str] | None = None) -> ScoreRun:
    """Score the dataset Parquet `table` (a file, or a folder of parts) on `spark` into the folder
    `output`, with the rejections and the run's metadata beside it, as `score_input` does locally."""
    from pyspark import StorageLevel

    clock, scored_at = Clock(), scored_now()
    by_as_of, description = as_of is None, str(table)
    with clock("reading and numbering"):
        frame, input_rows = _numbered(spark, table)
    missing = [f.code for f in model.features if f.code not in frame.columns]
    if missing:
        raise DataError(f"{table}: no column(s) {', '.join(missing)} that the model needs")
    with clock("finding duplicates"):
        duplicates = spark.sparkContext.broadcast(_duplicate_keys(frame, by_as_of))
    files, previous = spark.sparkContext.broadcast(model_files(model)), spark.sparkContext.broadcast(previous_tiers)
    features = model.features

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        scorer, partition_clock = model_from_files(files.value), Clock()
        tally = RunTally(scorer)
        for batch in batches:
            rows = conform(batch.drop(columns="_row").set_axis(batch["_row"].to_numpy()), features)
            scores, rejected = score_chunk(scorer, ref, description, Chunk(rows), duplicates.value, by_as_of, as_of, scored_at,
                                           previous.value, tally, partition_clock)
            if len(scores):
                yield _wide({c: scores[c] for c in SCORES}, len(scores), "score")
            if len(rejected):
                yield _wide({_REJECTED[c]: rejected[c] for c in REJECTION_COLUMNS}, len(rejected), "rejected")
        yield _wide({"_tally": [json.dumps(tally.to_dict() | {"seconds": partition_clock.seconds}, default=str)]}, 1, "tally")

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_size))
    parallelism = spark.sparkContext.defaultParallelism
    if frame.rdd.getNumPartitions() < parallelism:  # a file of one row group would be scored on one core
        frame = frame.repartition(parallelism)
    out = frame.mapInPandas(score_partition, _schema()).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        with clock("scoring and reasons (all partitions)"):
            parts = [json.loads(r["_tally"]) for r in out.where("_kind = 'tally'").select("_tally").collect()]
        tally, executor_seconds = RunTally(model), {}
        for part in parts:
            tally.merge(part)
            for step, seconds in part["seconds"].items():
                executor_seconds[step] = executor_seconds.get(step, 0.0) + seconds
        rejected = out.where("_kind = 'rejected'").select([out[name].alias(c) for c, name in _REJECTED.items()])
        metadata = run_metadata(model, ref, description, output, as_of, scored_at, previous_tiers, tally, input_rows, 0,
                                dict(clock.seconds))
        metadata |= {"engine": "spark", "partitions": len(parts),
                     "executor_seconds": {step: round(s, 2) for step, s in executor_seconds.items()}}
        reject_file = rejected_path_for(output)
        failure = run_failure(metadata, max_rejected_share)
        if failure:  # no output at all; what was found goes where the user is told, not beside the output
            diagnostics = Path(tempfile.mkdtemp(prefix=f"healthscore-failed-{output.stem}-"))
            _write(rejected.repartition(1).sortWithinPartitions("table", "row"), diagnostics / reject_file.name)
            (diagnostics / metadata_path_for(output).name).write_text(json.dumps(metadata, indent=1, default=str))
            raise TooManyRejected(f"{failure}; no scores written; the rejected rows and the run's metadata are in {diagnostics}",
                                  diagnostics)
        with clock("writing"):
            _write(out.where("_kind = 'score'").select(SCORES), output)
            if tally.rejected:
                _write(rejected.repartition(1).sortWithinPartitions("table", "row"), reject_file)
            elif reject_file.exists():
                shutil.rmtree(reject_file)  # a rejection folder from an earlier run would mislead
    finally:
        out.unpersist()
    metadata["timings"] = {step: round(s, 2) for step, s in clock.seconds.items()}
    metadata["seconds"] = round(sum(clock.seconds.values()), 2)
    with atomic_path(metadata_path_for(output)) as tmp:
        tmp.write_text(json.dumps(metadata, indent=1, default=str))
    return ScoreRun(reject_file if tally.rejected else None, metadata)


def _write(frame: DataFrame, target: Path) -> None:
    """Parquet parts into a staging folder beside `target`, moved over it once complete."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{os.getpid()}.spark")
    frame.write.mode("overwrite").parquet(str(staged))
    _replace_folder(staged, target)
