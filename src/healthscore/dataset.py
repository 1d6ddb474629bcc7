"""The modelling dataset: one row per (account, as_of), its features and the churn label.

A dataset file is self-describing: its Parquet metadata carries a `DatasetSpec` (which columns
are features, their labels, formats, good directions and driver families), so training, scoring
and reason texts work from the file alone, whether it came from the catalogue or from a user's
own snapshot table.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from healthscore.defaults import DATE_FLOOR
from healthscore.errors import DataError, no_rejections
from healthscore.io import atomic_path

METADATA_KEY = b"healthscore"
ACCOUNT_ATTRIBUTES = {"name": "account_name", "csm_owner": "csm_owner"}  # carried for reports, not features
# Carried, not features: the account's age and each dated table's days of data (`days_of_data_<table>`)
# at as_of, which reason texts compare with a metric's window ("new account, 8 days").
ACCOUNT_AGE, DATA_DAYS = "account_age_days", "days_of_data"


class ColumnReading(BaseModel):
    """How a snapshot table's column became a feature: decided once, on the training table, and
    replayed on every table scored later, so a column is never read one way in training and
    another way in scoring."""

    source: str  # the column's name in the user's table
    how: Literal["number", "flag", "text_number", "date", "text"]
    decimal_comma: bool = False  # text_number: '1.234,5'
    percent: bool = False  # text_number: values divided by 100
    dayfirst: bool = False  # date: day/month/year rather than month/day/year
    days_before: Literal["as_of", "latest"] = "as_of"  # date: days before the row's as_of, or the file's reference date
    date_floor: dt.date = DATE_FLOOR  # date: earlier dates are placeholders, their rows rejected (training and scoring)


class FeatureSpec(BaseModel):
    code: str
    label: str
    kind: Literal["numeric", "categorical"] = "numeric"
    format: str = "number"
    good_direction: Literal["higher", "lower", "none"] = "none"
    family: str = "other"
    description: str = ""
    missing_text: str = ""
    window_days: int | None = None  # how far back the metric looks (offsets and inputs included)
    window_source: str | None = None  # the table whose data start bounds that window
    partial_window: Literal["scale", "missing", "as_is"] | None = None  # how a partly covered window is read
    cap: float | None = None  # a days-since metric's look-back: the value when nothing is found within it
    reading: ColumnReading | None = None  # snapshot tables only; catalogue metrics are built, not read


class DatasetSpec(BaseModel):
    origin: Literal["catalogue", "snapshot"]
    id_column: str = "account_id"
    as_of_column: str | None = "as_of"
    label_column: str | None = "churned"
    horizon_days: int | None = None
    features: list[FeatureSpec]
    attributes: list[str] = []
    notes: list[str] = []
    reference_date: dt.date | None = None  # a snapshot table without as_of: the date its dates count back from

    @property
    def feature_codes(self) -> list[str]:
        return [f.code for f in self.features]

    @property
    def categorical(self) -> list[str]:
        return [f.code for f in self.features if f.kind == "categorical"]


@dataclass
class Dataset:
    frame: pd.DataFrame
    spec: DatasetSpec
    rejections: pd.DataFrame = field(default_factory=no_rejections)  # input rows set aside (errors.REJECTION_COLUMNS)
    timings: dict[str, float] = field(default_factory=dict)
    coverage: pd.DataFrame | None = None  # metric QA of a built dataset: one row per feature (build.coverage)

    def __post_init__(self) -> None:
        self.frame = conform(self.frame, self.spec.features)

    @property
    def labelled(self) -> pd.DataFrame:
        """Rows whose label horizon lies inside the data: the ones a model may learn from."""
        return self.frame[self.frame[self.spec.label_column].notna()]

    def write(self, path: str | Path) -> Path:
        """Write atomically; rejected input rows (if any) go beside it as `<name>.rejected.csv`,
        the metric coverage (if built) as `<name>.coverage.csv`."""
        path = Path(path)
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = dict(table.schema.metadata or {}) | {METADATA_KEY: self.spec.model_dump_json().encode()}
        with atomic_path(path) as tmp:
            pq.write_table(table.replace_schema_metadata(meta), tmp)
        write_rejections(self.rejections, path)
        if self.coverage is not None:
            with atomic_path(coverage_path(path)) as tmp:
                self.coverage.to_csv(tmp, index=False)
        return path


def rejections_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(path.suffix) + ".rejected.csv")


def coverage_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(path.suffix) + ".coverage.csv")


def write_rejections(rejections: pd.DataFrame, beside: Path) -> None:
    """The input rows set aside, as `<name>.rejected.csv` beside a dataset (none: no file)."""
    report = rejections_path(beside)
    if len(rejections):
        with atomic_path(report) as tmp:
            rejections.to_csv(tmp, index=False)
    else:
        report.unlink(missing_ok=True)


def read_dataset(path: str | Path) -> Dataset:
    """Read a dataset written by `Dataset.write` (from the catalogue or a snapshot table)."""
    path = Path(path)
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise DataError(f"{path}: not a healthscore dataset (no {METADATA_KEY.decode()} metadata); "
                         "build it with `healthscore build-dataset`")
    return Dataset(table.to_pandas(), DatasetSpec.model_validate(json.loads(raw)))


def conform(frame: pd.DataFrame, features: list[FeatureSpec]) -> pd.DataFrame:
    """Column types as training saw them. Numeric features are doubles everywhere: a count may be
    missing at scoring time, and the registered model's signature rejects integers where it
    expects doubles."""
    if "as_of" in frame and pd.api.types.is_datetime64_any_dtype(frame["as_of"]):
        frame["as_of"] = frame["as_of"].dt.date
    if "churned" in frame:
        frame["churned"] = frame["churned"].astype("boolean")
    numeric = [f.code for f in features if f.kind == "numeric" and f.code in frame]
    categorical = [f.code for f in features if f.kind == "categorical" and f.code in frame]
    try:
        frame[numeric] = frame[numeric].astype("float64")
    except (ValueError, TypeError):  # a dataset file edited by hand: say which column, not numpy's words
        for code in numeric:
            text = frame[code][pd.to_numeric(frame[code], errors="coerce").isna() & frame[code].notna()]
            if len(text):
                raise DataError(f"metric column {code!r} holds text where numbers belong (first: {list(text.head(3))}): "
                                "a dataset file's metric columns are numbers; rebuild it with build-dataset") from None
        raise
    frame[categorical] = frame[categorical].astype("string")
    return frame
