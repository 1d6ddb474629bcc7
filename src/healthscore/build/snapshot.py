"""A user's own, already aggregated snapshot table as a Dataset: no raw tables, no config.

Such a table declares nothing, so what the metric catalogue would state has to be guessed from
column names and values: types, formats, which columns are identifiers and which ones give the
outcome away. The guesses are conservative and every one is written to `spec.notes`, so the user
can see (and overrule) what was decided. As with raw tables, every input row ends up either in
the frame or in the rejections with a reason.

An optional `<table name>.columns.yaml` beside the table states what the guesses cannot know:
a column's label, format, good direction and driver family (`columns: {MonthlyCharges: {label:
Monthly charges, format: currency, direction: lower, family: commercial}}`). A column with no
stated direction gets one inferred at training time from the training rows
(`healthscore.model.directions`), which the config's `model.directions` overrides.

What was decided about each feature column is also kept as data, a `ColumnReading` in its
`FeatureSpec`, and the values are read from it by `readers.parse_column`: a table scored later
(`healthscore.scoring.snapshot_input`) is read by the same function with the same decisions,
never guessed again.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pandas.api import types as ptypes
from pydantic import BaseModel, ConfigDict, ValidationError
from sklearn.metrics import roc_auc_score

from healthscore.build.readers import (
    AS_OF_NAMES,
    FLAGS,
    MOST,
    REFERENCE_SHARE,
    clean_text,
    date_reading,
    days_before,
    find_column,
    first_values,
    guess_dates,
    implausible_dates,
    number_reading,
    parse_column,
    read_table,
    reference_date,
    snake_case,
    written_as,
)
from healthscore.dataset import ColumnReading, Dataset, DatasetSpec, FeatureSpec
from healthscore.defaults import DATE_FLOOR
from healthscore.errors import REJECTION_COLUMNS, ConfigError, DataError, Reason, describe_rejections

CHURNED = {"yes", "y", "true", "t", "1", "1.0", "churned", "churn", "lost", "closed lost", "cancelled", "canceled", "left"}
RETAINED = {"no", "n", "false", "f", "0", "0.0", "retained", "active", "won", "closed won", "renewed", "stayed", "not churned"}
LEAK_NAME = re.compile(r"(^|_)(churn|cancel|terminat|offboard|closed_lost|lost_reason|renewed|end_date|ended)")
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|email|email_address|key)$")
PERCENT_NAME = re.compile(r"(^|_)(rate|pct|percent|percentage|share|ratio|utili[sz]ation)(_|$)")
CURRENCY_NAME = re.compile(r"(^|_)(mrr|arr|revenue|amount)(_|$)")
DAYS_NAME = re.compile(r"(^|_)days(_|$)")
ACRONYMS = {"mrr", "arr", "nps", "csat", "acv", "ltv", "sla", "api", "csm", "qbr", "id"}
EMAIL = r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}"
UUID = r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
MAX_CATEGORIES = 50
MIN_CLASS = 5  # rows of each label needed before a column's separating power means anything
LEAK_AUC = 0.98
MIXED = 0.5  # a column with this share of numbers (or dates), but under `MOST`, lost its type to unreadable values
MixedColumns = Literal["error", "text"]


class ColumnHints(BaseModel):
    """What the `<table>.columns.yaml` beside a snapshot table may state about one column."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    format: Literal["number", "integer", "percent", "days", "hours", "currency", "score", "text"] | None = None
    direction: Literal["higher", "lower", "none"] | None = None
    family: str | None = None


class _Sidecar(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: dict[str, ColumnHints] = {}


def sidecar_path(table: Path) -> Path:
    return table.with_name(table.name + ".columns.yaml")


def read_sidecar(table: Path) -> dict[str, ColumnHints]:
    """The column hints beside `table` (none: empty)."""
    path = sidecar_path(table)
    if not path.exists():
        return {}
    try:
        return _Sidecar.model_validate(yaml.safe_load(path.read_text()) or {}).columns
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


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
                           as_of_column: str | None = None, reference_date: dt.date | None = None,
                           date_floor: dt.date = DATE_FLOOR, mixed_columns: MixedColumns = "error") -> Dataset:
    """Type, check and label a snapshot table (label_column None: a table to score, not to train on).
    A table without as_of counts its dates back from `reference_date` (None: derived, see
    `readers.reference_date`); rows dated after it, or before `date_floor`, are rejected. A column
    mostly of numbers or dates, but with too many values that are not, is an error, or with
    `mixed_columns` "text" read as text (a category or an attribute, not a number)."""
    path = Path(path)
    raw, how = read_table(path)
    return _Builder(path, raw, how, reference_date, date_floor, mixed_columns).build(id_column, label_column, as_of_column)


class _Builder:
    def __init__(self, path: Path, raw: pd.DataFrame, how: str, reference: dt.date | None = None, floor: dt.date = DATE_FLOOR,
                 mixed: MixedColumns = "error"):
        self.path, self.raw, self.reference, self.floor, self.mixed = path, raw, reference, floor, mixed
        self.reference_used: dt.date | None = None
        self.notes = [f"read {path.name}: {len(raw):,} rows x {raw.shape[1]} columns ({how})"]
        self.reason = pd.Series(None, index=raw.index, dtype=object)  # first reason a row is rejected
        self.reason_code = pd.Series(None, index=raw.index, dtype=object)
        self.reason_column = pd.Series(None, index=raw.index, dtype=object)
        self.taken = {"account_id", "as_of", "churned"}

    def build(self, id_column: str, label_column: str | None, as_of_column: str | None) -> Dataset:
        id_col = self._find(id_column, "id")
        label_col = self._find(label_column, "label") if label_column else None
        if label_col == id_col:
            raise DataError(f"{self.path}: column {id_col!r} cannot be both the id and the label")
        as_of_col = self._find(as_of_column, "as_of") if as_of_column else self._detect_as_of({id_col, label_col})

        ids = clean_text(self.raw[id_col])
        self.notes.append(f"id: column {id_col!r} -> account_id")
        self._reject(ids.isna(), id_col, Reason.MISSING_ID, "missing account id")
        as_of = self._as_of(as_of_col) if as_of_col else None
        key = ids.to_frame("id").assign(as_of=as_of) if as_of is not None else ids.to_frame("id")
        self._reject(self.reason.isna() & key.duplicated(keep=False), id_col, Reason.DUPLICATE_ID, "duplicate account id")
        labels = self._labels(label_col) if label_col else None

        kept = self._kept(ids)
        self.y = labels[kept] if labels is not None else None
        self.leak_y = self._leak_labels()
        columns = [self._column(c, self.raw.loc[kept, c]) for c in self.raw.columns if c not in {id_col, label_col, as_of_col}]
        columns = [c for c in columns if c is not None]

        features = [c for c in columns if c.kind != "attribute"]
        self._days_before(features, as_of[kept] if as_of is not None else None)
        kept = self._kept(ids)  # less the rows with an implausible date or an infinite number
        self.y = labels[kept] if labels is not None else None
        frame = pd.DataFrame({"account_id": ids[kept].astype("string")})
        if as_of is not None:
            frame["as_of"] = as_of[kept].dt.date
        for c in columns:
            values = c.values[kept[c.values.index]]
            frame[c.code] = values.astype("string") if c.kind in ("categorical", "attribute") else values.astype(float)
            self.notes.append(f"column {c.source!r} kept as attribute {c.code}, not a feature: {c.how}" if c.kind == "attribute"
                              else f"column {c.source!r} -> feature {c.code} ({c.how})")
        if self.y is not None:
            frame["churned"] = self.y
        rejections = self._rejections(ids)
        if len(rejections):
            counts = (rejections["reason"].str.replace(r"^label .* is not yes/no$", "label not yes/no", regex=True)
                      .str.replace(r"^'.*?' is ", "", regex=True).value_counts())
            self.notes.append(f"{len(rejections):,} rows rejected (see rejections): " + ", ".join(f"{r} {n:,}" for r, n in counts.items()))
        specs = self._with_hints([FeatureSpec(code=c.code, label=_label(c), kind="categorical" if c.kind == "categorical" else "numeric",
                                              format=c.format, reading=c.reading) for c in features])
        spec = DatasetSpec(
            origin="snapshot",
            as_of_column="as_of" if as_of is not None else None,
            label_column="churned" if self.y is not None else None,
            horizon_days=None,
            features=specs,
            attributes=[c.code for c in columns if c.kind == "attribute"],
            notes=self.notes,
            reference_date=self.reference_used,
        )
        return Dataset(frame.reset_index(drop=True), spec, rejections)

    def _with_hints(self, features: list[FeatureSpec]) -> list[FeatureSpec]:
        """Apply the sidecar's hints, keyed by the table's column name or the feature code."""
        hints = read_sidecar(self.path)
        by_name = {f.reading.source: f.code for f in features} | {f.code: f.code for f in features}
        unknown = sorted(set(hints) - set(by_name))
        if unknown:
            raise ConfigError(f"{sidecar_path(self.path)}: column(s) {unknown} are not features of {self.path.name} "
                              f"(features: {sorted(f.reading.source for f in features)})")
        stated = {by_name[name]: h for name, h in hints.items()}
        out = []
        for f in features:
            h = stated.get(f.code)
            if h is None:
                out.append(f)
                continue
            update = {"label": h.label, "format": h.format, "good_direction": h.direction, "family": h.family}
            out.append(f.model_copy(update={k: v for k, v in update.items() if v is not None}))
            self.notes.append(f"column {f.reading.source!r}: {', '.join(f'{k} {v}' for k, v in update.items() if v is not None)} "
                              f"(from {sidecar_path(self.path).name})")
        return out

    # --- rows ------------------------------------------------------------------------------------

    def _find(self, name: str, role: str) -> str:
        return find_column(self.path, list(self.raw.columns), name, role)

    def _kept(self, ids: pd.Series) -> pd.Series:
        kept = self.reason.isna()
        if not kept.any():
            raise DataError(f"{self.path}: every row is rejected, nothing left to use:\n" + describe_rejections(self._rejections(ids)))
        return kept

    def _reject_dates(self, dates: pd.Series, reading: ColumnReading, ref: pd.Timestamp | None = None) -> None:
        """Rows whose date in `reading.source` is before the floor or after `ref` (see `implausible_dates`)."""
        text = clean_text(self.raw[reading.source])
        for rows, code, reason in implausible_dates(dates, reading, ref):
            self._reject(rows.reindex(self.raw.index, fill_value=False), reading.source, code,
                         text.map(lambda v, r=reason: r.format(repr(v)), na_action="ignore"))

    def _reject(self, mask: pd.Series, column: str, code: Reason, reason: str | pd.Series) -> None:
        """Set rows aside; a row keeps the first reason found for it."""
        new = mask & self.reason.isna()
        self.reason[new] = reason[new] if isinstance(reason, pd.Series) else reason
        self.reason_code[new] = str(code)
        self.reason_column[new] = column

    def _rejections(self, ids: pd.Series) -> pd.DataFrame:
        bad = self.reason.notna()
        value = pd.Series(None, index=self.raw.index, dtype=object)
        for col in self.reason_column[bad].unique():
            rows = bad & (self.reason_column == col)
            value[rows] = clean_text(self.raw.loc[rows, col]).astype(object)
        frame = pd.DataFrame({
            "table": self.path.name, "row": self.raw.index[bad] + 1, "account_id": ids[bad].astype(object),
            "column": self.reason_column[bad], "value": value[bad], "code": self.reason_code[bad], "reason": self.reason[bad],
        })
        return frame[REJECTION_COLUMNS].reset_index(drop=True)

    def _detect_as_of(self, skip: set[str | None]) -> str | None:
        """Only a column named like an observation date, complete and all dates, is taken as as_of:
        mistaking a feature date for it would shift every row's point in time."""
        candidates = []
        for c in self.raw.columns:
            if c in skip or snake_case(c) not in AS_OF_NAMES:
                continue
            dates, _ = guess_dates(self.raw[c])
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
        dates, how = guess_dates(self.raw[col])
        text = clean_text(self.raw[col])
        if dates.notna().sum() == 0:
            raise DataError(f"{self.path}: as_of column {col!r} holds no dates; first values: {first_values(text)}")
        self._reject(text.isna(), col, Reason.MISSING_AS_OF, "missing as_of")
        self._reject(dates.isna(), col, Reason.NOT_A_DATE, "as_of " + text.map(repr, na_action="ignore") + " is not a date")
        self._reject_dates(dates, ColumnReading(source=col, how="date", date_floor=self.floor))
        self.notes.append(f"as_of: column {col!r} -> as_of ({how}; {dates.dt.date.nunique()} distinct dates)")
        return dates

    def _labels(self, col: str) -> pd.Series:
        text = clean_text(self.raw[col])
        key = text.str.lower().str.replace(r"[\s_-]+", " ", regex=True)
        labels = pd.Series(pd.NA, index=text.index, dtype="boolean")
        labels[key.isin(CHURNED)] = True
        labels[key.isin(RETAINED)] = False
        unread = text.notna() & labels.isna()
        if text.notna().sum() == 0 or unread.sum() == text.notna().sum():
            raise DataError(f"{self.path}: label column {col!r} has no yes/no (churned/retained) value; "
                            f"first values: {first_values(text)}")
        self._reject(unread, col, Reason.NOT_YES_NO, "label " + text.map(repr, na_action="ignore") + " is not yes/no")
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
        code = snake_case(source)
        if LEAK_NAME.search(code):
            self.notes.append(f"column {source!r} excluded: its name suggests the outcome (possible leak)")
            return None
        col = self._typed(source, code, values)
        if col is None:
            return None
        if col.kind == "numeric" and np.isinf(col.values).any():  # '1e309' reads as infinity: no count or amount is
            infinite = np.isinf(col.values)
            self._reject(infinite.reindex(self.raw.index, fill_value=False), source, Reason.NOT_A_NUMBER,
                         clean_text(values).map(lambda v: f"{v!r} is not a finite number", na_action="ignore"))
            col.values = col.values.mask(infinite)
        leak = self._leak(col)
        if leak:
            self.notes.append(f"column {source!r} excluded: looks like a leak ({leak})")
            return None
        col.code = self._unique(code if col.kind != "date" else "days_since_" + re.sub(r"_(date|at|on|dt|time|timestamp)$", "", code))
        return col

    def _typed(self, source: str, code: str, s: pd.Series) -> _Column | None:
        text = clean_text(s)
        n, distinct = int(text.notna().sum()), text.nunique()
        if n == 0 or (distinct == 1 and n == len(s)):  # one value and blanks still tells rows apart
            self.notes.append(f"column {source!r} not used: " + ("empty" if n == 0 else f"constant ({first_values(text, 1)})"))
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
        numbers = number_reading(source, text)
        if numbers is not None:
            reading, how, currency = numbers
            values, unread = parse_column(s, reading)
            how += f"; {int(unread.sum())} value(s) not numbers read as missing: {first_values(text[unread])}" if unread.any() else ""
            fmt = _format(code, values, reading.percent, currency)
            return _Column(source, code, "numeric", values, fmt, f"numeric, {fmt}{how}", reading)
        found = date_reading(source, s)
        if found is not None:
            reading, how = found
            dates, unread = parse_column(s, reading)
            if dates.notna().sum() >= MOST * n:
                how += f"; {int(unread.sum())} value(s) not dates read as missing: {first_values(text[unread])}" if unread.any() else ""
                return _Column(source, code, "date", dates, "days", how, reading)
        if unique and text.dropna().str.fullmatch(r"(?=\S*[A-Za-z])(?=\S*\d)\S+").mean() >= MOST:
            return _Column(source, code, "attribute", text, "text", "looks like an id (a unique code per row)")
        self._mixed(source, text)
        if distinct <= MAX_CATEGORIES and distinct <= n / 2:
            return _Column(source, code, "categorical", text, "text", f"categorical, {distinct} values", as_text)
        return _Column(source, code, "attribute", text, "text", f"free text ({distinct:,} distinct values in {n:,} rows)")

    def _mixed(self, source: str, text: pd.Series) -> None:
        """A column mostly of numbers or dates that too many unreadable values keep from being read as
        such would silently stop being a number: an error naming it, unless the user opts in."""
        what, fits = max(written_as(text).items(), key=lambda kv: kv[1].sum())
        if not len(fits) or fits.mean() < MIXED:
            return
        present = text.dropna()
        note = f"{int(fits.sum()):,} of its {len(present):,} values are {what} ({fits.mean():.0%}, under the {MOST:.0%} needed)"
        if self.mixed == "text":
            self.notes.append(f"column {source!r}: {note}; read as text (mixed_columns: text)")
            return
        raise DataError(f"{self.path}: column {source!r}: {note}, so it would silently stop being {what}; "
                        f"values that are not: {first_values(present[~fits])}; fix them, or pass --mixed-columns text "
                        "(mixed_columns='text') to read the column as text")

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
        """Dates become days before as_of (a model compares accounts, not calendar days), or without
        as_of before the reference date, given or derived robustly, and said; rows dated before the
        floor or after the reference date are rejected."""
        dates = [c for c in features if c.kind == "date"]
        if self.reference is not None and (as_of is not None or not dates):
            raise DataError(f"{self.path}: a reference date counts a table's dates back when it has no as_of column, and this one "
                            + ("has one" if dates else "has no date column"))
        if not dates:
            return
        ref = None
        if as_of is None:
            latest = pd.concat([c.values for c in dates], axis=1).max(axis=1)
            ref = pd.Timestamp(self.reference) if self.reference else reference_date(latest)
            after = int((latest > ref).sum())
            how = "given" if self.reference else (f"derived: the latest date not far ahead of the date {REFERENCE_SHARE:.0%} of "
                                                  "rows do not pass; set it with reference_date")
            self.notes.append(f"reference date {ref.date()} ({how}): dates count days back from it"
                              + (f"; {after:,} row(s) dated after it rejected" if after else ""))
            said = f"days before {ref.date()}, the reference date (no as_of); negative = after it"
            self.reference_used = ref.date()
        else:
            said = "days before as_of; negative = after it"
        for c in dates:
            c.reading.date_floor = self.floor
            c.reading.days_before = "latest" if as_of is None else "as_of"
            self._reject_dates(c.values, c.reading, ref)
            c.values, c.how = days_before(c.values, ref if as_of is None else as_of), f"{c.how}, as {said}"

    def _unique(self, code: str) -> str:
        out, i = code, 2
        while out in self.taken:
            out, i = f"{code}_{i}", i + 1
        self.taken.add(out)
        return out


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


def _label(col: _Column) -> str:
    """The user's own column name when it is already written for people ("Support tickets 90d")."""
    if " " in col.source.strip() and col.kind != "date":
        text = " ".join(col.source.split())
    else:
        text = " ".join(w.upper() if w in ACRONYMS else w for w in col.code.split("_"))
    return text[:1].upper() + text[1:]


