"""A user's own, already aggregated snapshot table as a Dataset: no raw tables, no config.

Such a table declares nothing, so what the metric catalogue would state has to be guessed from
column names and values: types, formats, which columns are identifiers and which ones give the
outcome away. The guesses are conservative and every one is written to `spec.notes`, so the user
can see (and overrule) what was decided. As in `healthscore.sources`, every input row ends up
either in the frame or in the exclusions with a reason.

What was decided about each feature column is also kept as data, a `ColumnReading` in its
`FeatureSpec`, and the values are read from it by `parse_column`: a table scored later
(`healthscore.scoring.snapshot_input`) is read by the same function with the same decisions,
never guessed again.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes
from sklearn.metrics import roc_auc_score

from healthscore.dataset import ColumnReading, Dataset, DatasetSpec, FeatureSpec
from healthscore.sources import EXCLUSION_COLUMNS, DataError, describe_exclusions

MISSING = {"", "na", "n/a", "nan", "null", "#n/a"}
CHURNED = {"yes", "y", "true", "t", "1", "1.0", "churned", "churn", "lost", "closed lost", "cancelled", "canceled", "left"}
RETAINED = {"no", "n", "false", "f", "0", "0.0", "retained", "active", "won", "closed won", "renewed", "stayed", "not churned"}
FLAGS = {"yes", "no", "y", "n", "true", "false", "t", "f"}
YES = {"yes", "y", "true", "t"}
AS_OF_NAMES = {"as_of", "as_of_date", "asof", "snapshot_date", "snapshot", "observation_date", "score_date", "date"}
LEAK_NAME = re.compile(r"(^|_)(churn|cancel|terminat|offboard|closed_lost|lost_reason|renewed|end_date|ended)")
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|email|email_address|key)$")
PERCENT_NAME = re.compile(r"(^|_)(rate|pct|percent|percentage|share|ratio|utili[sz]ation)(_|$)")
CURRENCY_NAME = re.compile(r"(^|_)(mrr|arr|revenue|amount)(_|$)")
DAYS_NAME = re.compile(r"(^|_)days(_|$)")
ACRONYMS = {"mrr", "arr", "nps", "csat", "acv", "ltv", "sla", "api", "csm", "qbr", "id"}
EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
MOST = 0.9  # share of a column's values that must read as numbers / dates for it to be typed so
MAX_CATEGORIES = 50
MIN_CLASS = 5  # rows of each label needed before a column's separating power means anything
LEAK_AUC = 0.98
READ_ERRORS = (OSError, EOFError, csv.Error, pa.ArrowException, pd.errors.ParserError, UnicodeError)

# Currency and percent signs around a number; the body is checked against one convention below.
_NUMBER = r"^(?P<sign>[-+]?)\s*(?:[$€£¥]|usd|eur|gbp)?\s*(?P<body>[\d.,]+(?:e[-+]?\d+)?)\s*(?:[$€£¥]|usd|eur|gbp)?\s*(?P<pct>%?)$"
_POINT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:e[-+]?\d+)?", re.I)  # 1,234.5
_COMMA = re.compile(r"(?:\d{1,3}(?:\.\d{3})+|\d+)?(?:,\d+)?(?:e[-+]?\d+)?", re.I)  # 1.234,5
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?"
_YMD = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}" + _TIME)
_DMY = r"^(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}" + _TIME + "$"


@dataclass
class _Column:
    """What one input column became; `values` are aligned on the kept rows."""

    source: str
    code: str
    kind: Literal["numeric", "categorical", "date", "attribute"]
    values: pd.Series
    format: str = "number"
    how: str = ""
    reading: ColumnReading | None = None  # features only


def build_snapshot_dataset(path: str | Path, id_column: str, label_column: str | None = None,
                           as_of_column: str | None = None) -> Dataset:
    """Type, check and label a snapshot table (label_column None: a table to score, not to train on)."""
    path = Path(path)
    raw, how = _read(path)
    return _Builder(path, raw, how).build(id_column, label_column, as_of_column)


class _Builder:
    def __init__(self, path: Path, raw: pd.DataFrame, how: str):
        self.path, self.raw = path, raw
        self.notes = [f"read {path.name}: {len(raw):,} rows x {raw.shape[1]} columns ({how})"]
        self.reason = pd.Series(None, index=raw.index, dtype=object)  # first reason a row is excluded
        self.reason_column = pd.Series(None, index=raw.index, dtype=object)
        self.taken = {"account_id", "as_of", "churned"}

    def build(self, id_column: str, label_column: str | None, as_of_column: str | None) -> Dataset:
        id_col = self._find(id_column, "id")
        label_col = self._find(label_column, "label") if label_column else None
        if label_col == id_col:
            raise DataError(f"{self.path}: column {id_col!r} cannot be both the id and the label")
        as_of_col = self._find(as_of_column, "as_of") if as_of_column else self._detect_as_of({id_col, label_col})

        ids = _text(self.raw[id_col])
        self.notes.append(f"id: column {id_col!r} -> account_id")
        self._exclude(ids.isna(), id_col, "missing id")
        as_of = self._as_of(as_of_col) if as_of_col else None
        key = ids.to_frame("id").assign(as_of=as_of) if as_of is not None else ids.to_frame("id")
        self._exclude(self.reason.isna() & key.duplicated(keep=False), id_col, "duplicate account_id")
        labels = self._labels(label_col) if label_col else None

        kept = self.reason.isna()
        if not kept.any():
            raise DataError(f"{self.path}: every row is excluded, nothing left to use:\n" + describe_exclusions(self._exclusions(ids)))
        self.y = labels[kept] if labels is not None else None
        self.leak_y = self._leak_labels()
        columns = [self._column(c, self.raw.loc[kept, c]) for c in self.raw.columns if c not in {id_col, label_col, as_of_col}]
        columns = [c for c in columns if c is not None]

        frame = pd.DataFrame({"account_id": ids[kept].astype("string")})
        if as_of is not None:
            frame["as_of"] = as_of[kept].dt.date
        features = [c for c in columns if c.kind != "attribute"]
        self._days_before(features, as_of[kept] if as_of is not None else None)
        for c in columns:
            frame[c.code] = c.values.astype("string") if c.kind in ("categorical", "attribute") else c.values.astype(float)
            self.notes.append(f"column {c.source!r} kept as attribute {c.code}, not a feature: {c.how}" if c.kind == "attribute"
                              else f"column {c.source!r} -> feature {c.code} ({c.how})")
        if self.y is not None:
            frame["churned"] = self.y
        exclusions = self._exclusions(ids)
        if len(exclusions):
            counts = exclusions["reason"].str.replace(r"^label .* is not yes/no$", "label not yes/no", regex=True).value_counts()
            self.notes.append(f"{len(exclusions):,} rows excluded (see exclusions): " + ", ".join(f"{r} {n:,}" for r, n in counts.items()))
        spec = DatasetSpec(
            origin="snapshot",
            as_of_column="as_of" if as_of is not None else None,
            label_column="churned" if self.y is not None else None,
            horizon_days=None,
            features=[FeatureSpec(code=c.code, label=_label(c), kind="categorical" if c.kind == "categorical" else "numeric",
                                  format=c.format, reading=c.reading) for c in features],
            attributes=[c.code for c in columns if c.kind == "attribute"],
            notes=self.notes,
        )
        return Dataset(frame.reset_index(drop=True), spec, exclusions)

    # --- rows ------------------------------------------------------------------------------------

    def _find(self, name: str, role: str) -> str:
        return find_column(self.path, list(self.raw.columns), name, role)

    def _exclude(self, mask: pd.Series, column: str, reason: str | pd.Series) -> None:
        """Set rows aside; a row keeps the first reason found for it."""
        new = mask & self.reason.isna()
        self.reason[new] = reason[new] if isinstance(reason, pd.Series) else reason
        self.reason_column[new] = column

    def _exclusions(self, ids: pd.Series) -> pd.DataFrame:
        bad = self.reason.notna()
        value = pd.Series(None, index=self.raw.index, dtype=object)
        for col in self.reason_column[bad].unique():
            rows = bad & (self.reason_column == col)
            value[rows] = _text(self.raw.loc[rows, col]).astype(object)
        frame = pd.DataFrame({
            "table": self.path.name, "row": self.raw.index[bad] + 1, "account_id": ids[bad].astype(object),
            "column": self.reason_column[bad], "value": value[bad], "reason": self.reason[bad],
        })
        return frame[EXCLUSION_COLUMNS].reset_index(drop=True)

    def _detect_as_of(self, skip: set[str | None]) -> str | None:
        """Only a column named like an observation date, complete and all dates, is taken as as_of:
        mistaking a feature date for it would shift every row's point in time."""
        candidates = []
        for c in self.raw.columns:
            if c in skip or _snake(c) not in AS_OF_NAMES:
                continue
            dates, _ = _dates(self.raw[c])
            if dates.notna().all():
                candidates.append(c)
        if len(candidates) == 1:
            self.notes.append(f"as_of: column {candidates[0]!r} taken as the observation date (pass as_of_column to choose another)")
            return candidates[0]
        if candidates:
            self.notes.append(f"as_of: several candidate columns {candidates}, none used; pass as_of_column")
        self.notes.append("as_of: none; the table is read as a single snapshot")
        return None

    def _as_of(self, col: str) -> pd.Series:
        dates, how = _dates(self.raw[col])
        text = _text(self.raw[col])
        if dates.notna().sum() == 0:
            raise DataError(f"{self.path}: as_of column {col!r} holds no dates; first values: {_first(text)}")
        self._exclude(text.isna(), col, "missing as_of")
        self._exclude(dates.isna(), col, "as_of " + text.map(repr, na_action="ignore") + " is not a date")
        self.notes.append(f"as_of: column {col!r} -> as_of ({how}; {dates.dt.date.nunique()} distinct dates)")
        return dates

    def _labels(self, col: str) -> pd.Series:
        text = _text(self.raw[col])
        key = text.str.lower().str.replace(r"[\s_-]+", " ", regex=True)
        labels = pd.Series(pd.NA, index=text.index, dtype="boolean")
        labels[key.isin(CHURNED)] = True
        labels[key.isin(RETAINED)] = False
        unread = text.notna() & labels.isna()
        if text.notna().sum() == 0 or unread.sum() == text.notna().sum():
            raise DataError(f"{self.path}: label column {col!r} has no yes/no (churned/retained) value; "
                            f"first values: {_first(text)}")
        self._exclude(unread, col, "label " + text.map(repr, na_action="ignore") + " is not yes/no")
        read = self.reason.isna()
        churned, retained, unlabelled = read & labels.fillna(False), read & ~labels.fillna(True), read & text.isna()
        self.notes.append(
            f"label: column {col!r} -> churned; {sorted(text[churned].unique())[:4]} read as churned, "
            f"{sorted(text[retained].unique())[:4]} as retained: {int(churned.sum()):,} churned, {int(retained.sum()):,} retained"
            + (f", {int(unlabelled.sum()):,} without a label (kept: scored, not trained on)" if unlabelled.any() else "")
        )
        return labels

    # --- columns ---------------------------------------------------------------------------------

    def _column(self, source: str, values: pd.Series) -> _Column | None:
        """Type one column, or leave it out with a note; None when it is left out."""
        code = _snake(source)
        if LEAK_NAME.search(code):
            self.notes.append(f"column {source!r} excluded: its name suggests the outcome (possible leak)")
            return None
        col = self._typed(source, code, values)
        if col is None:
            return None
        leak = self._leak(col)
        if leak:
            self.notes.append(f"column {source!r} excluded: looks like a leak ({leak})")
            return None
        col.code = self._unique(code if col.kind != "date" else "days_since_" + re.sub(r"_(date|at|on|dt|time|timestamp)$", "", code))
        return col

    def _typed(self, source: str, code: str, s: pd.Series) -> _Column | None:
        text = _text(s)
        n, distinct = int(text.notna().sum()), text.nunique()
        if n == 0 or (distinct == 1 and n == len(s)):  # one value and blanks still tells rows apart
            self.notes.append(f"column {source!r} not used: " + ("empty" if n == 0 else f"constant ({_first(text, 1)})"))
            return None
        unique = distinct == n == len(s)
        for pattern, what in ((EMAIL, "email addresses"), (UUID, "UUIDs")):
            if text.dropna().str.fullmatch(pattern).mean() >= MOST:
                return _Column(source, code, "attribute", text, "text", f"looks like an id ({what})")
        as_text = ColumnReading(source=source, how="text")
        if ID_NAME.search(code):
            if unique:
                return _Column(source, code, "attribute", text, "text", "looks like an id (named like one, unique per row)")
            if distinct <= MAX_CATEGORIES:
                return _Column(source, code, "categorical", text, "text", f"categorical: named like an id but repeats, {distinct} values",
                               as_text)
            return _Column(source, code, "attribute", text, "text", f"named like an id, {distinct:,} values: too many for categories")
        if ptypes.is_bool_dtype(s) or set(text.dropna().str.lower()) <= FLAGS:
            reading = ColumnReading(source=source, how="flag")
            return _Column(source, code, "numeric", parse_column(s, reading)[0], "integer", "yes/no, coded 1/0", reading)
        if ptypes.is_numeric_dtype(s):
            reading = ColumnReading(source=source, how="number")
            values = parse_column(s, reading)[0]
            fmt = _format(code, values, False, False)
            return _Column(source, code, "numeric", values, fmt, f"numeric, {fmt}", reading)
        numbers = _number_reading(source, text)
        if numbers is not None:
            reading, how, currency = numbers
            values, unread = parse_column(s, reading)
            how += f"; {int(unread.sum())} value(s) not numbers read as missing: {_first(text[unread])}" if unread.any() else ""
            fmt = _format(code, values, reading.percent, currency)
            return _Column(source, code, "numeric", values, fmt, f"numeric, {fmt}{how}", reading)
        found = _date_reading(source, s)
        if found is not None:
            reading, how = found
            dates, unread = parse_column(s, reading)
            if dates.notna().sum() >= MOST * n:
                how += f"; {int(unread.sum())} value(s) not dates read as missing: {_first(text[unread])}" if unread.any() else ""
                return _Column(source, code, "date", dates, "days", how, reading)
        if unique and text.dropna().str.fullmatch(r"(?=\S*[A-Za-z])(?=\S*\d)\S+").mean() >= MOST:
            return _Column(source, code, "attribute", text, "text", "looks like an id (a unique code per row)")
        if distinct <= MAX_CATEGORIES and distinct <= n / 2:
            return _Column(source, code, "categorical", text, "text", f"categorical, {distinct} values", as_text)
        return _Column(source, code, "attribute", text, "text", f"free text ({distinct:,} distinct values in {n:,} rows)")

    def _leak_labels(self) -> pd.Series | None:
        """The labels to test columns against, if there are enough of each to mean anything."""
        if self.y is None:
            return None
        y = self.y.dropna().astype(bool)
        if min(int(y.sum()), int((~y).sum())) < MIN_CLASS:
            self.notes.append(f"too few labelled rows ({int(y.sum())} churned, {int((~y).sum())} retained; need {MIN_CLASS} of each) "
                              "to test columns for leaks on their values: only their names were checked")
            return None
        return y

    def _leak(self, col: _Column) -> str | None:
        """Why `col` on its own separates churned from retained almost perfectly, if it does.

        A real health signal never does: such a column was almost surely recorded after the outcome
        (a cancel date, a status), and a model trained on it would learn nothing else.
        """
        y = self.leak_y
        if y is None:
            return None
        values = col.values[y.index]
        missing = values.isna()
        if missing.any() and not missing.all():
            auc = roc_auc_score(y, missing)
            if _extreme(auc):
                return f"missing almost exactly when the account {'churned' if auc > 0.5 else 'was retained'}, AUC {auc:.2f} on its own"
        y, values = y[~missing], values[~missing]
        if col.kind == "attribute" or min(int(y.sum()), int((~y).sum())) < MIN_CLASS:
            return None
        if col.kind == "categorical":
            common = values.where(values.map(values.value_counts()) >= MIN_CLASS).astype(object).fillna("\0rare")
            score = y.astype(float).groupby(common).transform("mean")
        else:
            score = values.astype("int64") if col.kind == "date" else values
        auc = roc_auc_score(y, score.astype(float))
        return f"AUC {auc:.2f} on its own" if _extreme(auc) else None

    def _days_before(self, features: list[_Column], as_of: pd.Series | None) -> None:
        """Dates become days before as_of: a model compares accounts, not calendar days."""
        dates = [c for c in features if c.kind == "date"]
        if not dates:
            return
        if as_of is None:
            ref = max(c.values.max() for c in dates)
            said = f"days before {ref.date()}, the latest date in the file (no as_of); negative = after it"
        else:
            ref, said = as_of, "days before as_of; negative = after it"
        for c in dates:
            c.values, c.how = days_before(c.values, ref), f"{c.how}, as {said}"
            c.reading.days_before = "latest" if as_of is None else "as_of"

    def _unique(self, code: str) -> str:
        out, i = code, 2
        while out in self.taken:
            out, i = f"{code}_{i}", i + 1
        self.taken.add(out)
        return out


# --- reading files -------------------------------------------------------------------------------


def is_parquet(path: Path) -> bool:
    """Whether `path` is a Parquet file rather than a CSV; an error for any other file."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    name = path.name.lower()
    if not name.endswith((".parquet", ".pq", ".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")):
        raise DataError(f"{path}: unknown file type; expected .csv, .csv.gz or .parquet")
    return name.endswith((".parquet", ".pq"))


@contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """A file that cannot be read is the user's to fix: say which, not where in our code."""
    try:
        yield
    except READ_ERRORS as exc:
        raise DataError(f"{path}: cannot read the file: {(str(exc) or type(exc).__name__).splitlines()[0]}") from None


def _read(path: Path) -> tuple[pd.DataFrame, str]:
    parquet = is_parquet(path)
    with reading_errors(path):
        frame, how = (pq.read_table(path).to_pandas(), "Parquet") if parquet else _read_csv(path)
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.shape[1] == 0 or len(frame) == 0:
        raise DataError(f"{path}: the table is empty (columns: {list(frame.columns)})")
    return frame.reset_index(drop=True), how


def _read_csv(path: Path) -> tuple[pd.DataFrame, str]:
    options, how = csv_options(path)
    return pd.read_csv(path, **options), how


def csv_options(path: Path) -> tuple[dict, str]:
    """`read_csv` options for a CSV, and what they are.

    All columns as text: typing is done per column here, not by the CSV parser's guesses. The
    delimiter is sniffed from the head; the encoding is UTF-8 unless some byte of the file is not,
    checked over the whole file up front so a file read in chunks is decoded one way throughout.
    """
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as f:
        head = f.read(65536)
        if not head.strip():
            raise DataError(f"{path}: the file is empty")
        if b"\x00" in head:
            raise DataError(f"{path}: cannot read the file: not a text (CSV) file")
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            for block in itertools.chain([head], iter(lambda: f.read(1 << 20), b"")):
                decoder.decode(block)
            decoder.decode(b"", final=True)
            encoding = "utf-8-sig"
        except UnicodeDecodeError:
            encoding = "latin-1"
    sample = head.decode("utf-8", errors="replace")
    sample = sample[: sample.rfind("\n")] if "\n" in sample else sample
    try:
        sep = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        sep = ","
    options = {"sep": sep, "dtype": str, "keep_default_na": False, "encoding": encoding}
    return options, f"CSV, delimiter {sep!r}" + ("" if encoding == "utf-8-sig" else ", not UTF-8: read as Latin-1")


def find_column(path: Path, columns: list[str], name: str, role: str) -> str:
    """`name` as written, or the one column that is the same in snake_case ('customer_id' finds 'Customer ID')."""
    if name in columns:
        return name
    matches = [c for c in columns if _snake(c) == _snake(name)]
    if len(matches) == 1:
        return matches[0]
    raise DataError(f"{path}: {role} column {name!r} not found; columns are {columns}")


# --- reading values: one set of functions for training and scoring ----------------------------


def parse_column(values: pd.Series, reading: ColumnReading) -> tuple[pd.Series, pd.Series]:
    """`values` read as `reading` says (dates as dates), and where a present value could not be.

    The builder reads unreadable values as missing (it chose the reading for most of the values,
    and says how many did not fit); a scoring reader rejects their rows.
    """
    if reading.how in ("number", "text_number"):
        return _read_numbers(values, reading.decimal_comma, reading.percent)
    if reading.how == "flag":
        text = _text(values).str.lower()
        return text.isin(YES).astype(float).where(text.notna()), text.notna() & ~text.isin(FLAGS)
    if reading.how == "date":
        return _read_dates(values, reading.dayfirst)
    return _text(values), pd.Series(False, index=values.index)


def read_column(values: pd.Series, reading: ColumnReading, ref: pd.Series | pd.Timestamp | None = None,
                ) -> tuple[pd.Series, pd.Series]:
    """A feature as the model sees it: `parse_column`, dates as days before `ref` (the rows' as_of or
    the latest date in the file, as `reading.days_before` says)."""
    out, unread = parse_column(values, reading)
    return (days_before(out, ref) if reading.how == "date" else out), unread


def days_before(dates: pd.Series, ref: pd.Series | pd.Timestamp) -> pd.Series:
    """Dates as days before `ref`: a model compares accounts, not calendar days."""
    return (ref - dates).dt.days.astype(float)


def _read_numbers(s: pd.Series, decimal_comma: bool, percent: bool) -> tuple[pd.Series, pd.Series]:
    if ptypes.is_numeric_dtype(s):
        values, unread = s.astype(float), pd.Series(False, index=s.index)
    else:
        text = _text(s)
        _, parts = _number_parts(text)
        ok = _number_bodies(parts, decimal_comma)
        body = parts.loc[ok, "body"]
        body = body.str.replace(".", "").str.replace(",", ".") if decimal_comma else body.str.replace(",", "")
        values = pd.to_numeric(parts.loc[ok, "sign"] + body).reindex(s.index).astype(float)
        unread = text.notna() & ~ok.reindex(s.index, fill_value=False)
    return (values / 100 if percent else values), unread


def _number_parts(text: pd.Series) -> tuple[pd.Series, pd.DataFrame]:
    """The present values without digit-group spaces and with accounting negatives signed, and
    their sign, body (digits and separators, not yet interpreted) and percent sign."""
    t = text.dropna()
    t = t.str.replace(r"(?<=\d)[\s\u00a0\u202f'](?=\d{3}(?!\d))", "", regex=True)  # 1 234 / 1'234
    t = t.str.replace(r"^\((.*)\)$", r"-\1", regex=True)  # accounting negatives
    parts = t.str.extract(_NUMBER, flags=re.I)
    parts["body"] = parts["body"].fillna("")
    return t, parts


def _number_bodies(parts: pd.DataFrame, decimal_comma: bool) -> pd.Series:
    """Which bodies are numbers written with a decimal comma (1.234,5) or point (1,234.5)."""
    body = parts["body"]
    return body.str.fullmatch(_COMMA if decimal_comma else _POINT) & body.str.contains(r"\d")


def _read_dates(s: pd.Series, dayfirst: bool) -> tuple[pd.Series, pd.Series]:
    if ptypes.is_datetime64_any_dtype(s) or ptypes.infer_dtype(s, skipna=True) in ("date", "datetime"):
        out, present = pd.to_datetime(s, errors="coerce", utc=True), s.notna()
    else:
        text = _text(s)
        out, present = pd.to_datetime(text, format="mixed", dayfirst=dayfirst, errors="coerce", utc=True), text.notna()
    out = out.dt.tz_localize(None).dt.normalize()
    return out, present & out.isna()


# --- guessing how to read a column ---------------------------------------------------------------


def _number_reading(source: str, text: pd.Series) -> tuple[ColumnReading, str, bool] | None:
    """How to read numbers stored as text ('1,234', '$5.00', '45%', '1.234,5'), what that is, and
    whether they are amounts of money; None if the column is not numbers.

    A comma is a decimal comma only when more values read that way than with a decimal point, so
    '1,234' stays one thousand two hundred and thirty-four unless the column says otherwise.
    """
    t, parts = _number_parts(text)
    point, comma = _number_bodies(parts, False), _number_bodies(parts, True)
    decimal_comma = bool(comma.sum() > point.sum())
    if not len(t) or (comma if decimal_comma else point).mean() < MOST:
        return None
    percent = bool((parts["pct"] == "%").any())
    currency = bool(t.str.contains(r"[$€£¥]|usd|eur|gbp", case=False).any())
    plain = t[~t.str.fullmatch(r"[-+]?\d+(\.\d+)?")]
    how = f"; read from text such as {plain.iloc[0]!r}" if len(plain) else ""
    how += "; decimal commas" if decimal_comma else ""
    how += "; percentages divided by 100" if percent else ""
    return ColumnReading(source=source, how="text_number", decimal_comma=decimal_comma, percent=percent), how, currency


def _date_reading(source: str, s: pd.Series) -> tuple[ColumnReading, str] | None:
    """How to read a column of dates and what that is; None if it is not dates.

    Only year-first and day/month/year shapes are tried; which of day/month comes first is decided
    for the whole column, from any value that can only be read one way.
    """
    if ptypes.is_datetime64_any_dtype(s) or ptypes.infer_dtype(s, skipna=True) in ("date", "datetime"):
        return ColumnReading(source=source, how="date"), "dates"
    t = _text(s).dropna()
    if not len(t):
        return None
    if t.str.fullmatch(_YMD).mean() >= MOST:
        dayfirst, how = False, "dates, year first"
    else:
        parts = t.str.extract(_DMY).dropna().astype(int)
        if len(parts) < MOST * len(t) or ((parts[0] > 12).any() and (parts[1] > 12).any()):
            return None
        dayfirst = bool((parts[0] > 12).any())
        how = "dates, day/month/year" if dayfirst else "dates, month/day/year" + ("" if (parts[1] > 12).any() else " (assumed: no day above 12)")
    return ColumnReading(source=source, how="date", dayfirst=dayfirst), how


def _dates(s: pd.Series) -> tuple[pd.Series, str]:
    """Dates (NaT where a value is not one) and how they were read."""
    found = _date_reading(str(s.name), s)
    if found is None:
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]"), "no dates"
    return parse_column(s, found[0])[0], found[1]


def _text(s: pd.Series) -> pd.Series:
    """Trimmed text, NA for empty and missing markers; whole floats without their '.0', value by
    value so that a chunk of a file reads as the whole file does."""
    out = s.astype("string")
    if ptypes.is_float_dtype(s):
        whole = (s % 1 == 0) & (s.abs() < 2**53)
        out = out.mask(whole, s[whole].astype("Int64").astype("string"))
    out = out.str.strip()
    return out.mask(out.str.lower().isin(MISSING))


def _format(code: str, values: pd.Series, percent: bool, currency: bool) -> str:
    v = values.dropna()
    if percent or (PERCENT_NAME.search(code) and v.between(0, 1).all()):
        return "percent"
    if currency or CURRENCY_NAME.search(code):
        return "currency"
    if DAYS_NAME.search(code):
        return "days"
    return "integer" if (v % 1 == 0).all() else "number"


def _extreme(auc: float) -> bool:
    return auc >= LEAK_AUC or auc <= 1 - LEAK_AUC


def _snake(name: object) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name).strip())
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    return s if re.match(r"[a-z]", s) else f"col_{s}".rstrip("_")


def _label(col: _Column) -> str:
    """The user's own column name when it is already written for people ("Support tickets 90d")."""
    if " " in col.source.strip() and col.kind != "date":
        text = " ".join(col.source.split())
    else:
        text = " ".join(w.upper() if w in ACRONYMS else w for w in col.code.split("_"))
    return text[:1].upper() + text[1:]


def _first(text: pd.Series, n: int = 5) -> str:
    shown = [f"row {i + 1} ({v!r})" for i, v in text.dropna().head(n).items()]
    return ", ".join(shown) or "none"
