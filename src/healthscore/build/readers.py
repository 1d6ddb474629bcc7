"""Reading a user's table and its values: one set of functions for training and scoring.

The snapshot builder decides once, on the training table, how each column is read (a
`ColumnReading`: numbers written as text, decimal commas, percentages, day-first dates); scoring
(`healthscore.scoring.snapshot_input`) reads every later table with these same functions and
those same decisions, so nothing is guessed again from a new file or from one chunk of it.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pandas.api import types as ptypes

from healthscore.dataset import ColumnReading
from healthscore.errors import DataError, Reason

MISSING = {"", "na", "n/a", "nan", "null", "#n/a"}


FLAGS = {"yes", "no", "y", "n", "true", "false", "t", "f"}


YES = {"yes", "y", "true", "t"}


AS_OF_NAMES = {"as_of", "as_of_date", "asof", "snapshot_date", "snapshot", "observation_date", "score_date", "date"}


MOST = 0.9  # share of a column's values that must read as numbers / dates for it to be typed so


READ_ERRORS = (OSError, EOFError, csv.Error, pa.ArrowException, pd.errors.ParserError, UnicodeError)


_NUMBER = r"^(?P<sign>[-+]?)\s*(?:[$€£¥]|usd|eur|gbp)?\s*(?P<body>[\d.,]+(?:e[-+]?\d+)?)\s*(?:[$€£¥]|usd|eur|gbp)?\s*(?P<pct>%?)$"


_POINT = re.compile(r"(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:e[-+]?\d+)?", re.I)  # 1,234.5


_COMMA = re.compile(r"(?:\d{1,3}(?:\.\d{3})+|\d+)?(?:,\d+)?(?:e[-+]?\d+)?", re.I)  # 1.234,5


_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}:?\d{2})?)?"


_YMD = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}" + _TIME)


_DMY = r"^(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}" + _TIME + "$"


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


def read_table(path: Path) -> tuple[pd.DataFrame, str]:
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
    matches = [c for c in columns if snake_case(c) == snake_case(name)]
    if len(matches) == 1:
        return matches[0]
    raise DataError(f"{path}: {role} column {name!r} not found; columns are {columns}")


def parse_column(values: pd.Series, reading: ColumnReading) -> tuple[pd.Series, pd.Series]:
    """`values` read as `reading` says (dates as dates), and where a present value could not be.

    The builder reads unreadable values as missing (it chose the reading for most of the values,
    and says how many did not fit); a scoring reader rejects their rows.
    """
    if reading.how in ("number", "text_number"):
        return _read_numbers(values, reading.decimal_comma, reading.percent)
    if reading.how == "flag":
        text = clean_text(values).str.lower()
        return text.isin(YES).astype(float).where(text.notna()), text.notna() & ~text.isin(FLAGS)
    if reading.how == "date":
        return _read_dates(values, reading.dayfirst)
    return clean_text(values), pd.Series(False, index=values.index)


REFERENCE_SHARE = 0.99  # a table's reference date is near the date this share of its rows do not pass...
REFERENCE_SLACK = (pd.Timedelta(days=92), pd.Timedelta(days=731))  # ... at most this far after it (see reference_date)


def reference_date(latest: pd.Series) -> pd.Timestamp:
    """The date a table without as_of counts days back from: its latest date, ignoring the few
    rows far ahead of the rest (one typo dated 2099 would otherwise move every row's values).

    It is the latest date no further after the date that `REFERENCE_SHARE` of the rows do not pass
    than that date is after the median row, counted as at least 3 months and at most 2 years: the
    bulk's own spread says how far ahead a real latest date may lie (a login, days; a renewal, years). `latest`: each row's latest
    date (NaT: none)."""
    dates = latest.dropna()
    if not len(dates):
        return pd.NaT
    high = dates.quantile(REFERENCE_SHARE, interpolation="lower")
    slack = min(max(high - dates.quantile(0.5, interpolation="lower"), REFERENCE_SLACK[0]), REFERENCE_SLACK[1])
    return dates[dates <= high + slack].max()


def implausible_dates(dates: pd.Series, reading: ColumnReading, ref: pd.Timestamp | None = None) -> list[tuple[pd.Series, Reason, str]]:
    """(rows, reason code, reason with {} for the value) of dates no row may carry: before the
    reading's date floor, or after `ref`, the reference date its days count back from."""
    out = [(dates < pd.Timestamp(reading.date_floor), Reason.BEFORE_DATE_FLOOR,
            f"{{}} is before the date floor ({reading.date_floor}): a placeholder, not history")]
    if ref is not None and not pd.isna(ref):
        out.append((dates > ref, Reason.AFTER_REFERENCE_DATE, f"{{}} is after the reference date ({ref.date()})"))
    return out


def days_before(dates: pd.Series, ref: pd.Series | pd.Timestamp) -> pd.Series:
    """Dates as days before `ref`: a model compares accounts, not calendar days."""
    return (ref - dates).dt.days.astype(float)


def _read_numbers(s: pd.Series, decimal_comma: bool, percent: bool) -> tuple[pd.Series, pd.Series]:
    if ptypes.is_numeric_dtype(s):
        values, unread = s.astype(float), pd.Series(False, index=s.index)
    else:
        text = clean_text(s)
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
        text = clean_text(s)
        out, present = pd.to_datetime(text, format="mixed", dayfirst=dayfirst, errors="coerce", utc=True), text.notna()
    out = out.dt.tz_localize(None).dt.normalize()
    return out, present & out.isna()


def number_reading(source: str, text: pd.Series) -> tuple[ColumnReading, str, bool] | None:
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


def written_as(text: pd.Series) -> dict[str, pd.Series]:
    """Which present values of a column are written as numbers (in the decimal convention that fits
    more of them) and which as dates: how much of a column that `number_reading` and `date_reading`
    refused was nonetheless numbers or dates."""
    t, parts = _number_parts(text)
    point, comma = _number_bodies(parts, False), _number_bodies(parts, True)
    return {"numbers": comma if comma.sum() > point.sum() else point,
            "dates": t.str.fullmatch(_YMD) | t.str.fullmatch(_DMY)}


def date_reading(source: str, s: pd.Series) -> tuple[ColumnReading, str] | None:
    """How to read a column of dates and what that is; None if it is not dates.

    Only year-first and day/month/year shapes are tried; which of day/month comes first is decided
    for the whole column, from any value that can only be read one way.
    """
    if ptypes.is_datetime64_any_dtype(s) or ptypes.infer_dtype(s, skipna=True) in ("date", "datetime"):
        return ColumnReading(source=source, how="date"), "dates"
    t = clean_text(s).dropna()
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


def guess_dates(s: pd.Series) -> tuple[pd.Series, str]:
    """Dates (NaT where a value is not one) and how they were read."""
    found = date_reading(str(s.name), s)
    if found is None:
        return pd.Series(pd.NaT, index=s.index, dtype="datetime64[ns]"), "no dates"
    return parse_column(s, found[0])[0], found[1]


def clean_text(s: pd.Series) -> pd.Series:
    """Trimmed text, NA for empty and missing markers; whole floats without their '.0', value by
    value so that a chunk of a file reads as the whole file does."""
    out = s.astype("string")
    if ptypes.is_float_dtype(s):
        whole = (s % 1 == 0) & (s.abs() < 2**53)
        out = out.mask(whole, s[whole].astype("Int64").astype("string"))
    out = out.str.strip()
    return out.mask(out.str.lower().isin(MISSING))


def snake_case(name: object) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name).strip())
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    return s if re.match(r"[a-z]", s) else f"col_{s}".rstrip("_")


def first_values(text: pd.Series, n: int = 5) -> str:
    shown = [f"row {i + 1} ({v!r})" for i, v in text.dropna().head(n).items()]
    return ", ".join(shown) or "none"
