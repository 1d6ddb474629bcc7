"""The modelling dataset: one row per (account, as_of), its features and the churn label.

A dataset file is self-describing: its Parquet metadata carries a `DatasetSpec` (which columns
are features, their labels, formats, good directions and driver families), so training, scoring
and reason texts work from the file alone, whether it came from the catalogue or from a user's
own snapshot table.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel

from healthscore.catalogue import Metric
from healthscore.config import Config
from healthscore.io import atomic_path
from healthscore.metrics_sql import activation_relation_sql, assemble_sql, base_queries, expand
from healthscore.sources import EXCLUSION_COLUMNS, load_sources

METADATA_KEY = b"healthscore"
ACCOUNT_ATTRIBUTES = {"name": "account_name", "csm_owner": "csm_owner"}  # carried for reports, not features


class ColumnReading(BaseModel):
    """How a snapshot table's column became a feature: decided once, on the training table, and
    replayed on every table scored later, so a column is never read one way in training and
    another way in scoring."""

    source: str  # the column's name in the user's table
    how: Literal["number", "flag", "text_number", "date", "text"]
    decimal_comma: bool = False  # text_number: '1.234,5'
    percent: bool = False  # text_number: values divided by 100
    dayfirst: bool = False  # date: day/month/year rather than month/day/year
    days_before: Literal["as_of", "latest"] = "as_of"  # date: days before the row's as_of, or the file's latest date


class FeatureSpec(BaseModel):
    code: str
    label: str
    kind: Literal["numeric", "categorical"] = "numeric"
    format: str = "number"
    good_direction: Literal["higher", "lower", "none"] = "none"
    family: str = "other"
    description: str = ""
    missing_text: str = ""
    reading: ColumnReading | None = None  # snapshot tables only; catalogue metrics are built, not read

    @classmethod
    def from_metric(cls, m: Metric) -> FeatureSpec:
        return cls(**m.model_dump(include=set(cls.model_fields)))


class DatasetSpec(BaseModel):
    origin: Literal["catalogue", "snapshot"]
    id_column: str = "account_id"
    as_of_column: str | None = "as_of"
    label_column: str | None = "churned"
    horizon_days: int | None = None
    features: list[FeatureSpec]
    attributes: list[str] = []
    notes: list[str] = []

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
    exclusions: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXCLUSION_COLUMNS))
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frame = conform(self.frame, self.spec.features)

    @property
    def labelled(self) -> pd.DataFrame:
        """Rows whose label horizon lies inside the data: the ones a model may learn from."""
        return self.frame[self.frame[self.spec.label_column].notna()]

    def write(self, path: str | Path) -> Path:
        """Write atomically; exclusions (if any) go beside it as `<name>.exclusions.csv`."""
        path = Path(path)
        table = pa.Table.from_pandas(self.frame, preserve_index=False)
        meta = dict(table.schema.metadata or {}) | {METADATA_KEY: self.spec.model_dump_json().encode()}
        with atomic_path(path) as tmp:
            pq.write_table(table.replace_schema_metadata(meta), tmp)
        write_exclusions(self.exclusions, path)
        return path


def exclusions_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(path.suffix) + ".exclusions.csv")


def write_exclusions(exclusions: pd.DataFrame, beside: Path) -> None:
    """The raw rows set aside, as `<name>.exclusions.csv` beside an output (none: no file)."""
    report = exclusions_path(beside)
    if len(exclusions):
        with atomic_path(report) as tmp:
            exclusions.to_csv(tmp, index=False)
    else:
        report.unlink(missing_ok=True)


def read_dataset(path: str | Path) -> Dataset:
    """Read a dataset written by `Dataset.write` (from the catalogue or a snapshot table)."""
    path = Path(path)
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a healthscore dataset (no {METADATA_KEY.decode()} metadata); "
                         "build it with `healthscore build-dataset`")
    return Dataset(table.to_pandas(), DatasetSpec.model_validate(json.loads(raw)))


def _observations_sql(config: Config, data_end: dt.date, as_of_dates: list[dt.date]) -> str:
    """Every account active at each as_of, with its label.

    Churn = the account's latest contract row (by start date) has ended: earlier rows are
    superseded by later ones (renewals, seat changes), whether or not the export closes them.
    Active at as_of = first subscription started before as_of and not churned before it.
    churned = the churn date falls in [as_of, as_of + horizon); NULL when that horizon runs past
    the data end: a "not churned" there only means "not yet", and keeping just the churns seen
    would bias the labels.
    """
    horizon = config.churn.horizon_days
    dates = ", ".join(f"(DATE '{d.isoformat()}')" for d in as_of_dates)
    return f"""
    CREATE TABLE observations AS
    WITH latest AS (  -- on a tie of start dates an open row wins: not churned
        SELECT account_id, end_date AS churn_date FROM src_subscriptions
        QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY start_date DESC, end_date DESC NULLS FIRST) = 1
    ),
    acc AS (
        SELECT account_id, min(start_date) AS first_start, any_value(churn_date) AS churn_date
        FROM src_subscriptions JOIN latest USING (account_id) GROUP BY account_id
    )
    SELECT acc.account_id, d.as_of,
           CASE WHEN d.as_of + {horizon} > DATE '{data_end.isoformat()}' THEN NULL
                ELSE coalesce(churn_date < d.as_of + {horizon}, false) END AS churned
    FROM acc, (VALUES {dates}) d(as_of)
    WHERE acc.first_start < d.as_of AND (churn_date IS NULL OR churn_date >= d.as_of)"""


Progress = Callable[[str], None]


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
    frame[numeric] = frame[numeric].astype("float64")
    frame[categorical] = frame[categorical].astype("string")
    return frame


@dataclass
class DatasetStream:
    """The metrics of every observed account, computed in DuckDB and not yet fetched: `frame()`
    fetches them at once, `batches(n)` n rows at a time (scoring a large base)."""

    con: duckdb.DuckDBPyConnection = field(repr=False)
    sql: str = field(repr=False)
    spec: DatasetSpec
    exclusions: pd.DataFrame
    timings: dict[str, float]
    rows: int

    def frame(self) -> pd.DataFrame:
        try:
            return conform(self.con.execute(self.sql).df(), self.spec.features)
        finally:
            self.con.close()

    def batches(self, size: int) -> Iterator[pd.DataFrame]:
        try:
            reader = self.con.sql(self.sql).to_arrow_reader(size)
            for batch in reader:
                yield conform(batch.to_pandas(), self.spec.features)
        finally:
            self.con.close()


def stream_dataset(
    config: Config, as_of: dt.date | list[dt.date] | None = None, progress: Progress | None = None, threads: int | None = None
) -> DatasetStream:
    """Compute the point-in-time metrics of every account at `as_of` (a date, a list, or the
    config's schedule) and the churn label, ready to fetch. Training and scoring both come here."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute("SET enable_progress_bar = false")  # progress is ours to show
    except duckdb.InvalidInputException:
        pass  # in Jupyter DuckDB will not touch the setting without ipywidgets, and prints no bar

    start = time.perf_counter()
    say("reading and checking the raw tables")
    sources = load_sources(config, con)
    timings["load_and_check"] = time.perf_counter() - start

    catalogue, notes = config.catalogue().available(sources.columns)
    metrics = expand(catalogue)
    if as_of is None:  # the schedule may run ahead of the data: its later dates are not observable yet
        scheduled = config.schedule.dates()
        dates = [d for d in scheduled if d <= sources.data_end]
        if not dates:
            raise ValueError(f"every schedule date is after the end of the data ({sources.data_end})")
        if len(dates) < len(scheduled):
            notes.append(f"{len(scheduled) - len(dates)} schedule date(s) after the end of the data ({sources.data_end}) left out")
    else:
        dates = [as_of] if isinstance(as_of, dt.date) else list(as_of)
        late = [d for d in dates if d > sources.data_end]
        if late:
            raise ValueError(f"as_of {late[0]} is after the end of the data ({sources.data_end}): no account can be observed then")
    con.execute(_observations_sql(config, sources.data_end, dates))
    if any(m.aggregation == "new_user_activation" for m in metrics):
        days = {m.activation_days for m in metrics if m.aggregation == "new_user_activation"}
        if len(days) > 1:
            raise ValueError(f"new_user_activation metrics must share activation_days, got {sorted(days)}")
        con.execute(activation_relation_sql(days.pop()))

    start = time.perf_counter()
    rows = con.execute("SELECT count(*) FROM observations").fetchone()[0]
    say(f"computing {len(catalogue)} metrics for {rows:,} account-dates")
    # One scan per query into a small table, then one join: DuckDB plans the parts far better
    # than one statement holding every scan.
    tables = {}
    for i, query in enumerate(base_queries(metrics, sources.columns)):
        say(f"metrics: {query.name}")
        con.execute(f"CREATE TEMP TABLE metric_{i} AS {query.sql}")
        tables[f"metric_{i}"] = query
    timings["metrics"] = time.perf_counter() - start
    attributes = {c: out for c, out in ACCOUNT_ATTRIBUTES.items() if c in sources.columns["accounts"]}
    spec = DatasetSpec(
        origin="catalogue",
        horizon_days=config.churn.horizon_days,
        features=[FeatureSpec.from_metric(m) for m in catalogue.features],
        attributes=list(attributes.values()) + [m.code for m in catalogue if not m.feature],
        notes=sources.notes + notes,
    )
    sql = assemble_sql(metrics, tables, [m.code for m in catalogue], attributes)
    return DatasetStream(con, sql, spec, sources.exclusions, timings, rows)


def build_dataset(
    config: Config, progress: Progress | None = None, threads: int | None = None, as_of_dates: list[dt.date] | None = None
) -> Dataset:
    """Build the point-in-time dataset for every account and as_of of the config's schedule
    (or of `as_of_dates`)."""
    stream = stream_dataset(config, as_of_dates, progress, threads)
    start = time.perf_counter()
    frame = stream.frame()
    stream.timings["metrics"] += time.perf_counter() - start
    return Dataset(frame, stream.spec, stream.exclusions, stream.timings)
