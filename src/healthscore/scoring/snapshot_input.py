"""A user's own snapshot table to score, read exactly as the model's training table was read.

Every feature of a model trained on a snapshot table carries the `ColumnReading` decided on the
training table; here each column is read by `readers.parse_column` with that reading, so the model
never sees a column read one way in training and another way in scoring, and nothing is guessed
again from the values of this file or of one chunk. The file is read a chunk at a time; only the
key columns (and the dates counted back from the file's reference date) are read whole, in a first pass.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from healthscore.build.readers import (
    AS_OF_NAMES,
    clean_text,
    csv_options,
    date_reading,
    days_before,
    find_column,
    first_values,
    implausible_dates,
    is_parquet,
    parse_column,
    reading_errors,
    reference_date,
    snake_case,
)
from healthscore.dataset import ACCOUNT_ATTRIBUTES, ColumnReading, FeatureSpec
from healthscore.defaults import DATE_FLOOR
from healthscore.errors import REJECTION_COLUMNS, DataError, Reason, no_rejections
from healthscore.scoring.chunks import Chunk, repeated, row_keys

SCAN_ROWS = 200_000  # rows per chunk of the first pass, which reads a few columns only
NOT_READ = {"number": (Reason.NOT_A_NUMBER, "{} is not a number"), "text_number": (Reason.NOT_A_NUMBER, "{} is not a number"),
            "flag": (Reason.NOT_YES_NO, "{} is not yes/no"), "date": (Reason.NOT_A_DATE, "{} is not a date")}


@dataclass
class _Scan:
    rows: int
    duplicates: set[str]  # by id and as_of
    duplicate_ids: set[str]  # by id alone
    as_of_reading: ColumnReading | None  # decided on the whole column, as in training
    latest: pd.Timestamp  # the reference date; NaT when no feature counts days back from one


class SnapshotTableInput:
    """A snapshot table (CSV, CSV.gz, TSV or Parquet) with the columns the model was trained on."""

    def __init__(self, path: Path, id_column: str, features: list[FeatureSpec], as_of_column: str | None = None,
                 reference_date: dt.date | None = None):
        self.path, self.features, self.given_reference = Path(path), features, reference_date
        self.description = str(self.path)
        self.rejections, self.timings, self.rejected_source_rows = no_rejections(), {}, 0  # rows are rejected chunk by chunk
        built = [f.code for f in features if f.reading is None]
        if built:
            raise DataError(f"{self.path}: the model was not trained on a snapshot table (its features, such as {built[0]!r}, "
                            "are built from raw tables): score a dataset built with build-dataset, or use --config")
        self.parquet = is_parquet(self.path)
        with reading_errors(self.path):
            if self.parquet:
                self.file = pq.ParquetFile(self.path)
                names = self.file.schema_arrow.names
            else:
                self.csv, _ = csv_options(self.path)
                names = list(pd.read_csv(self.path, **self.csv, nrows=0).columns)
        self.names = {str(n).strip(): n for n in names}  # as in the file, by the stripped name the user sees
        columns = list(self.names)
        self.id = find_column(self.path, columns, id_column, "id")
        self.sources = {f.code: find_column(self.path, columns, f.reading.source, f"feature {f.code}:") for f in features}
        taken = {self.id, *self.sources.values()}
        if as_of_column:
            candidates = [find_column(self.path, columns, as_of_column, "as_of")]
        else:
            candidates = [c for c in columns if snake_case(c) in AS_OF_NAMES and c not in taken]
        self.as_of = candidates[0] if len(candidates) == 1 else None  # several: none, as in training
        needs_as_of = [f.code for f in features if f.reading.how == "date" and f.reading.days_before == "as_of"]
        if needs_as_of and self.as_of is None:
            raise DataError(f"{self.path}: feature {needs_as_of[0]} counts days before each row's as_of, but "
                            + (f"several columns could be the as_of: {candidates}" if candidates
                               else f"no column is named like one ({', '.join(sorted(AS_OF_NAMES))})") + f"; columns are {columns}")
        self.attributes = {snake_case(c): c for c in columns
                           if snake_case(c) in set(ACCOUNT_ATTRIBUTES.values()) - set(self.sources) and c not in taken}
        self.latest = [f for f in features if f.reading.how == "date" and f.reading.days_before == "latest"]
        if reference_date is not None and not self.latest:
            raise DataError(f"{self.path}: the model counts no date back from a reference date (its dates count from each row's "
                            "as_of, or it has none): leave the reference date out")
        floors = [f.reading.date_floor for f in features if f.reading.how == "date"]
        self.as_of_floor = ColumnReading(source=self.as_of or "", how="date", date_floor=floors[0] if floors else DATE_FLOOR)

    @property
    def reference_date(self) -> dt.date | None:
        """The date the model's latest-counted dates count back from in this table: given, or derived
        as in training (`readers.reference_date`); None when no feature counts from one."""
        return self._scan.latest.date() if self.latest and not pd.isna(self._scan.latest) else None

    @property
    def rows(self) -> int:
        """From the Parquet metadata; a CSV is counted by the first pass."""
        return self.file.metadata.num_rows if self.parquet else self._scan.rows

    def duplicate_keys(self, by_as_of: bool = True) -> set[str]:
        return self._scan.duplicates if by_as_of else self._scan.duplicate_ids

    def chunks(self, size: int) -> Iterator[Chunk]:
        scan = self._scan
        needed = [self.id, *([self.as_of] if self.as_of else []), *self.sources.values(), *self.attributes.values()]
        for frame in self._frames(list(dict.fromkeys(needed)), size):
            rows = pd.DataFrame({"account_id": clean_text(frame[self.id])}, index=frame.index)
            checks = []  # (source column, unreadable rows, code, reason), in the order a row's first reason is taken
            as_of = None
            if self.as_of:
                as_of, unread = parse_column(frame[self.as_of], scan.as_of_reading)
                checks += [(self.as_of, clean_text(frame[self.as_of]).isna(), Reason.MISSING_AS_OF, "missing as_of"),
                           (self.as_of, unread, Reason.NOT_A_DATE, "as_of {} is not a date"),
                           *((self.as_of, *c) for c in implausible_dates(as_of, self.as_of_floor))]
                rows["as_of"] = as_of.dt.date
            for f in self.features:
                source = self.sources[f.code]
                values, unread = parse_column(frame[source], f.reading)
                if f.reading.how in NOT_READ:
                    checks.append((source, unread, *NOT_READ[f.reading.how]))
                if f.reading.how == "date":
                    ref = as_of if f.reading.days_before == "as_of" else scan.latest
                    checks += [(source, *c) for c in implausible_dates(values, f.reading, None if f.reading.days_before == "as_of" else ref)]
                    values = days_before(values, ref)
                rows[f.code] = values.astype("string") if f.kind == "categorical" else values.astype(float)
            for name, column in self.attributes.items():
                rows[name] = clean_text(frame[column])
            rejected = _rejections(self.description, frame, rows["account_id"], checks)
            yield Chunk(rows.drop(index=rejected["row"]), rejected)

    @cached_property
    def _scan(self) -> _Scan:
        """One pass over the id and as_of columns (and the dates counted back from the reference date):
        rows, repeated keys, how as_of is written (decided on the whole column, as in training) and
        the reference date: given, or derived as in training from the rows training would have kept
        (with an id, not repeated)."""
        columns = [self.id, *([self.as_of] if self.as_of else []), *(self.sources[f.code] for f in self.latest)]
        ids, as_of, latest = [], [], []
        for frame in self._frames(list(dict.fromkeys(columns)), SCAN_ROWS):
            ids.append(clean_text(frame[self.id]))
            if self.as_of:
                as_of.append(frame[self.as_of])
            if self.latest:
                dates = pd.concat([parse_column(frame[self.sources[f.code]], f.reading)[0] for f in self.latest], axis=1)
                latest.append(dates.max(axis=1))
        if not ids:
            return _Scan(0, set(), set(), None, pd.NaT)
        ids = pd.concat(ids)
        reading, keys = None, row_keys(ids)
        if self.as_of:
            as_of = pd.concat(as_of)
            found = date_reading(self.as_of, as_of)
            if found is None:
                first = first_values(clean_text(as_of).reset_index(drop=True))
                raise DataError(f"{self.path}: as_of column {self.as_of!r} holds no dates; first values: {first}")
            reading = found[0]
            dates = parse_column(as_of, reading)[0]
            keys = row_keys(ids, dates.dt.date).where(dates.notna())  # rows without a readable as_of are rejected
        duplicates = repeated(keys)
        ref = pd.NaT
        if latest:
            kept = ids.notna() & ~keys.isin(duplicates)
            ref = pd.Timestamp(self.given_reference) if self.given_reference else reference_date(pd.concat(latest)[kept])
        return _Scan(len(ids), duplicates, repeated(row_keys(ids)), reading, ref)

    def _frames(self, columns: list[str], size: int) -> Iterator[pd.DataFrame]:
        """`columns` of the file, `size` rows at a time, indexed by 1-based row number."""
        raw = [self.names[c] for c in columns]
        start = 1
        with reading_errors(self.path):
            if self.parquet:
                batches = (b.to_pandas() for b in self.file.iter_batches(batch_size=size, columns=raw))
            else:
                batches = pd.read_csv(self.path, **self.csv, usecols=raw, chunksize=size)
            with closing(batches):
                for frame in batches:
                    frame = frame[raw].set_axis(columns, axis=1)
                    frame.index = pd.RangeIndex(start, start + len(frame))
                    start += len(frame)
                    yield frame


def _rejections(table: str, frame: pd.DataFrame, ids: pd.Series, checks: list[tuple[str, pd.Series, Reason, str]]) -> pd.DataFrame:
    """One rejection per row with a value its reading cannot read: the first such value."""
    found, seen = [], pd.Series(False, index=frame.index)
    for column, unread, code, reason in checks:
        new = unread & ~seen
        if new.any():
            value = clean_text(frame.loc[new, column])
            found.append(pd.DataFrame({"table": table, "row": value.index, "account_id": ids[new].astype(object), "column": column,
                                       "value": value.astype(object), "code": str(code),
                                       "reason": [reason.format(repr(v)) for v in value]}))
            seen |= new
    if not found:
        return no_rejections()
    return pd.concat(found, ignore_index=True).sort_values("row", kind="stable")[REJECTION_COLUMNS].reset_index(drop=True)
