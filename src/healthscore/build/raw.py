"""The raw-table builder: the config's tables -> one point-in-time row per (account, as_of).

Named steps, each on one DuckDB connection: connect, load and check the sources, choose the
observation dates, label them (`labels`), compute every metric of the catalogue (`metric_sql`),
and assemble the rows. Training (`build_dataset`) and scoring (`stream_dataset`, fetched in
batches) run the same steps, so a metric is never computed one way for training and another for
scoring.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import duckdb
import pandas as pd

from healthscore.build.coverage import constant_metrics, coverage_table, refuse_unusable, unmatched_filters
from healthscore.build.labels import check_label_rates, horizon_notes, label_end, observations_sql
from healthscore.build.metric_sql import (
    ACCOUNT_STARTS,
    account_starts_sql,
    activation_relation_sql,
    assemble_sql,
    base_queries,
    coverage_columns,
    expand,
    lookback,
    window_source,
)
from healthscore.build.sources import REJECTION_SAMPLE, LoadedSources, load_sources
from healthscore.catalogue import Metric
from healthscore.config import Config
from healthscore.dataset import ACCOUNT_ATTRIBUTES, Dataset, DatasetSpec, FeatureSpec, conform
from healthscore.errors import DataError

Progress = Callable[[str], None]


def feature_spec(metric: Metric, metrics: dict[str, Metric]) -> FeatureSpec:
    """What the dataset file says about a catalogue metric (label, kind, format, direction, how far
    back it looks and how a partly covered window is read...); `metrics`: the expanded catalogue."""
    cap = metric.window_days if metric.aggregation == "days_since_last" else None
    return FeatureSpec(**metric.model_dump(include=set(FeatureSpec.model_fields))
                       | {"window_days": lookback(metric.code, metrics), "window_source": window_source(metric.code, metrics),
                          "partial_window": metric.partial_rule, "cap": cap})


@dataclass
class DatasetStream:
    """The metrics of every observed account, computed in DuckDB and not yet fetched: `frame()`
    fetches them at once, `batches(n)` n rows at a time (scoring a large base)."""

    con: duckdb.DuckDBPyConnection = field(repr=False)
    sql: str = field(repr=False)
    spec: DatasetSpec
    rejections: pd.DataFrame  # a sample per reason (see sources)
    timings: dict[str, float]
    rows: int
    rejection_counts: pd.DataFrame = field(default_factory=pd.DataFrame)  # table, column, code, reason, rows: every rejected row

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
    config: Config, as_of: dt.date | list[dt.date] | None = None, progress: Progress | None = None, threads: int | None = None,
    qa: bool = False, sample: int | None = REJECTION_SAMPLE,
) -> DatasetStream:
    """Compute the point-in-time metrics of every account at `as_of` (a date, a list, or the
    config's schedule) and the churn label, ready to fetch. Training and scoring both come here;
    with `qa` (building training data) filters that match nothing and implausible label rates
    are refused (see `coverage`, `labels`). `sample`: rejections kept per reason (None: all)."""
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    con = _connect(threads)

    start = time.perf_counter()
    say("reading and checking the raw tables")
    sources = load_sources(config, con, sample)
    timings["load_and_check"] = time.perf_counter() - start

    catalogue, notes = config.catalogue().available(sources.columns)
    if qa and (unusable := unmatched_filters(con, catalogue)):
        leave_out = refuse_unusable(unusable, {m.code: m.label for m in catalogue}, config.metrics.unusable)
        catalogue, more = catalogue.available(sources.columns, leave_out)
        notes += more
    metrics = expand(catalogue)
    dates = _observation_dates(config, sources, as_of, notes)
    con.execute(observations_sql(config, label_end(con, sources.data_end, notes), dates))
    con.execute(f"CREATE TEMP TABLE {ACCOUNT_STARTS} AS "
                + account_starts_sql(sources.data_start, "created_at" in sources.columns["accounts"]))
    notes += horizon_notes(config)
    if qa:
        check_label_rates(con, config)

    start = time.perf_counter()
    rows = con.execute("SELECT count(*) FROM observations").fetchone()[0]
    say(f"computing {len(catalogue)} metrics for {rows:,} account-dates")
    tables = _compute_metrics(con, metrics, sources, say)
    timings["metrics"] = time.perf_counter() - start

    attributes = {c: out for c, out in ACCOUNT_ATTRIBUTES.items() if c in sources.columns["accounts"]}
    spec = DatasetSpec(
        origin="catalogue",
        horizon_days=config.horizon.max_days,
        features=[feature_spec(m, {e.code: e for e in metrics}) for m in catalogue.features],
        attributes=[*attributes.values(), *coverage_columns(sources.data_start), *(m.code for m in catalogue if not m.feature)],
        notes=sources.notes + notes,
    )
    sql = assemble_sql(metrics, tables, [m.code for m in catalogue], attributes, sources.data_start)
    return DatasetStream(con, sql, spec, sources.rejections, timings, rows, sources.rejection_counts)


def build_dataset(
    config: Config, progress: Progress | None = None, threads: int | None = None, as_of_dates: list[dt.date] | None = None,
    sample: int | None = REJECTION_SAMPLE,
) -> Dataset:
    """Build the point-in-time dataset for every account and as_of of the config's schedule
    (or of `as_of_dates`), with the metric QA: metrics that measure nothing are refused (or
    dropped with a note) and the coverage table comes with the dataset."""
    stream = stream_dataset(config, as_of_dates, progress, threads, qa=True, sample=sample)
    start = time.perf_counter()
    frame = stream.frame()
    stream.timings["metrics"] += time.perf_counter() - start
    spec = stream.spec
    if len(frame[spec.as_of_column].unique()) > 1:  # one date of a small base may well be constant
        constant = constant_metrics(frame, spec.features)
        leave_out = refuse_unusable(constant, {f.code: f.label for f in spec.features}, config.metrics.unusable)
        if leave_out:
            frame = frame.drop(columns=list(leave_out))
            spec = spec.model_copy(update={"features": [f for f in spec.features if f.code not in leave_out],
                                           "notes": spec.notes + [f"metric {c} left out: {why}" for c, why in leave_out.items()]})
    return Dataset(frame, spec, stream.rejections, stream.timings, coverage_table(frame, spec.features))


def _connect(threads: int | None) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    con.execute("SET preserve_insertion_order = false")
    try:
        con.execute("SET enable_progress_bar = false")  # progress is ours to show
    except duckdb.InvalidInputException:
        pass  # in Jupyter DuckDB will not touch the setting without ipywidgets, and prints no bar
    return con


def _observation_dates(config: Config, sources: LoadedSources, as_of: dt.date | list[dt.date] | None,
                       notes: list[str]) -> list[dt.date]:
    """The as_of dates to observe: those asked for, or the schedule's up to the data end."""
    if as_of is None:  # the schedule may run ahead of the data: its later dates are not observable yet
        scheduled = config.schedule.dates()
        dates = [d for d in scheduled if d <= sources.data_end]
        if not dates:
            raise DataError(f"every schedule date is after the end of the data ({sources.data_end})")
        if len(dates) < len(scheduled):
            notes.append(f"{len(scheduled) - len(dates)} schedule date(s) after the end of the data ({sources.data_end}) left out")
        return dates
    dates = [as_of] if isinstance(as_of, dt.date) else list(as_of)
    late = [d for d in dates if d > sources.data_end]
    if late:
        raise DataError(f"as_of {late[0]} is after the end of the data ({sources.data_end}): no account can be observed then")
    return dates


def _compute_metrics(con: duckdb.DuckDBPyConnection, metrics: list[Metric], sources: LoadedSources,
                     say: Progress) -> dict:
    """One scan per query into a small temp table (DuckDB plans the parts far better than one
    statement holding every scan); returns {table name: query} for the assembly."""
    if any(m.aggregation == "new_user_activation" for m in metrics):
        days = {m.activation_days for m in metrics if m.aggregation == "new_user_activation"}
        if len(days) > 1:
            raise DataError(f"new_user_activation metrics must share activation_days, got {sorted(days)}")
        con.execute(activation_relation_sql(days.pop()))
    tables = {}
    for i, query in enumerate(base_queries(metrics, sources.columns)):
        say(f"metrics: {query.name}")
        try:
            con.execute(f"CREATE TEMP TABLE metric_{i} AS {query.sql}")
        except duckdb.Error as exc:  # SQL that passed the checks but not DuckDB's types: a user's metric
            sql = " ".join(query.sql.split())
            raise DataError(f"metric(s) {', '.join(query.columns)}: DuckDB cannot run the generated SQL: "
                            f"{str(exc).splitlines()[0]}; the SQL: {sql}") from None
        tables[f"metric_{i}"] = query
    return tables
