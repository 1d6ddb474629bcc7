"""What every scoring input hands the job: chunks of numbered rows, with the rows it could not
read already set aside as rejections, and the keys that the whole input repeats."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from healthscore.errors import no_rejections


@dataclass
class Chunk:
    rows: pd.DataFrame  # index: 1-based input row numbers; account_id, features, maybe as_of and attributes
    rejected: pd.DataFrame = field(default_factory=no_rejections)  # rows read but unreadable, not in `rows`


class ScoringInput(Protocol):
    rows: int  # input rows in all
    description: str  # what is read: the `table` of its rejections and the run's metadata
    rejections: pd.DataFrame  # raw-table rows the source checks set aside before any account was built (a sample)
    rejected_source_rows: int  # how many raw-table rows they set aside in all
    timings: dict[str, float]  # seconds of the steps that prepared the input before its first chunk
    reference_date: dt.date | None  # the date a snapshot table's dates count back from (said to the user); None: none do

    def duplicate_keys(self, by_as_of: bool = True) -> set[str]:
        """Keys (see `row_keys`) of accounts that occur more than once: none of their rows is scored,
        as nobody can say which one is right. By id alone (`by_as_of` False) when the run gives
        every row one as_of."""

    def chunks(self, size: int) -> Iterator[Chunk]: ...


def row_keys(ids: pd.Series, as_of: pd.Series | None = None) -> pd.Series:
    """An account is one row per as_of: the id, and the as_of when the input has several dates."""
    keys = ids.astype("string").str.strip()
    return keys if as_of is None else keys + "|" + as_of.astype("string").fillna("")


def repeated(keys: pd.Series) -> set[str]:
    keys = keys.dropna()
    return set(keys[keys.duplicated()])


def numbered(frames: Iterator[pd.DataFrame]) -> Iterator[Chunk]:
    """Chunks with their rows numbered from 1 across the whole input."""
    start = 1
    for frame in frames:
        frame.index = range(start, start + len(frame))
        start += len(frame)
        yield Chunk(frame)
