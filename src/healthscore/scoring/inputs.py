"""Where the accounts to score come from, read a chunk at a time so memory follows the chunk.

Every input says how many rows it has, which account keys occur more than once (found by a pass
over the key columns alone) and yields chunks of rows numbered from 1 as in the input. A row the
reader cannot read (a value that is not a number, an as_of that is not a date) is handed back as
a rejection with its reason instead of a row, so input rows = scored rows + rejected rows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from healthscore.build.raw import stream_dataset
from healthscore.config import Config
from healthscore.dataset import METADATA_KEY, FeatureSpec, conform
from healthscore.errors import UserError, no_rejections
from healthscore.scoring.chunks import Chunk, ScoringInput, numbered, repeated, row_keys
from healthscore.scoring.snapshot_input import SnapshotTableInput


class FrameInput:
    """A frame already in memory (the Python API, notebooks, tests)."""

    def __init__(self, frame: pd.DataFrame, description: str = "data frame"):
        self.frame = frame.reset_index(drop=True)
        self.frame.index = self.frame.index + 1
        self.rows, self.description, self.reference_date = len(self.frame), description, None
        self.rejections, self.timings, self.rejected_source_rows = no_rejections(), {}, 0

    def duplicate_keys(self, by_as_of: bool = True) -> set[str]:
        if "account_id" not in self.frame:
            return set()
        return repeated(row_keys(self.frame["account_id"], self.frame.get("as_of") if by_as_of else None))

    def chunks(self, size: int) -> Iterator[Chunk]:
        for start in range(0, len(self.frame), size):
            yield Chunk(self.frame.iloc[start:start + size])


class DatasetFileInput:
    """A dataset Parquet file written by `build-dataset` (features by code), read in row batches."""

    def __init__(self, path: Path, features: list[FeatureSpec]):
        self.path, self.features = path, features
        self.file = pq.ParquetFile(path)
        self.rows, self.description, self.reference_date = self.file.metadata.num_rows, str(path), None
        self.has_as_of = "as_of" in self.file.schema_arrow.names
        self.rejections, self.timings, self.rejected_source_rows = no_rejections(), {}, 0  # raw-table rejections: reported by build-dataset

    def duplicate_keys(self, by_as_of: bool = True) -> set[str]:
        keys = self.file.read(columns=["account_id", "as_of"] if self.has_as_of and by_as_of else ["account_id"]).to_pandas()
        return repeated(row_keys(keys["account_id"], keys.get("as_of")))

    def chunks(self, size: int) -> Iterator[Chunk]:
        return numbered(conform(batch.to_pandas(), self.features) for batch in self.file.iter_batches(batch_size=size))


class RawTablesInput:
    """The base at one as_of, built from the config's raw tables by the code that built the
    training data (no train/serve skew), fetched from DuckDB in batches."""

    def __init__(self, config: Config, as_of: dt.date):
        self.stream = stream_dataset(config, as_of)
        self.rows, self.description, self.reference_date = self.stream.rows, f"raw tables at {as_of}", None
        self.rejections, self.timings = self.stream.rejections, self.stream.timings
        counts = self.stream.rejection_counts
        self.rejected_source_rows = int(counts["rows"].sum()) if len(counts) else len(self.rejections)

    def duplicate_keys(self, by_as_of: bool = True) -> set[str]:
        return set()  # one row per account by construction (observations are keyed by account)

    def chunks(self, size: int) -> Iterator[Chunk]:
        return numbered(self.stream.batches(size))  # typed as in training by the stream


def open_table(path: Path, id_column: str | None, features: list[FeatureSpec], as_of_column: str | None = None,
               reference_date: dt.date | None = None) -> ScoringInput:
    """A dataset file from `build-dataset`, or a user's own snapshot table read the way the
    model's training table was read (its as_of column found by name unless given; its dates
    counted back from `reference_date`, or one derived as in training)."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq") and path.is_file():
        meta = pq.read_schema(path).metadata or {}
        if METADATA_KEY in meta:
            if reference_date is not None:
                raise UserError(f"{path}: a dataset file's dates are counted already; the reference date is for a snapshot table")
            return DatasetFileInput(path, features)
    return SnapshotTableInput(path, id_column or "account_id", features, as_of_column, reference_date)
