"""Raw tables into DuckDB: read each export, map its columns to the canonical names, check it.

Every raw row ends up either in the clean view `src_<table>` that the metric SQL reads, in the
rejections with its table, row number, column, value and reason, or (dated on or after the data
end: not bad, only outside the range) in one count per table. The rejections kept in memory and
written beside outputs are bounded: the first `sample` rows per table, column and reason, with
the full count per reason in `rejection_counts` (`sample=None` keeps every row). Problems that
make a whole table unusable (missing file or column, unreadable file, empty table, a column where
most values have the wrong type) are errors that name the table, column and first offending rows.

Once loaded, the connection is locked: it reads only the source files and cannot touch the file
system otherwise (DuckDB's `enable_external_access = false`, then `lock_configuration`), so the
metric SQL that runs on it next cannot read or write any other file even if a check missed it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from healthscore.config import Config, SourceConfig
from healthscore.errors import REJECTION_COLUMNS, DataError, Reason, describe_rejections, no_rejections
from healthscore.schema import Column, SourceSchema

_SEP = "\x1f"  # between column, reason code and text in the one string a row's checks produce
REJECTION_SAMPLE = 1000  # rows kept per table, column and reason


@dataclass
class LoadedSources:
    """The clean views registered on `con`, what they hold, and what was set aside."""

    con: duckdb.DuckDBPyConnection
    columns: dict[str, set[str]]  # canonical columns present, per table
    row_counts: dict[str, int]
    rejections: pd.DataFrame  # a sample: at most `sample` rows per table, column and reason
    data_end: dt.date
    notes: list[str] = field(default_factory=list)
    rejection_counts: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COUNT_COLUMNS))
    after_data_end: dict[str, int] = field(default_factory=dict)  # rows dated on/after data_end, per table
    # the first day of each dated table (no later than the first event: a small table's first row is not
    # where its export starts): a window reaching back before it is only partly covered
    data_start: dict[str, dt.date] = field(default_factory=dict)


COUNT_COLUMNS = ["table", "column", "code", "reason", "rows"]
DROPPED = "dropped_accounts"  # the accounts left out whole, a temp table of the loading connection
DROPPED_WHY = "account dropped: unreadable subscription row"


def sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _register_raw(con: duckdb.DuckDBPyConnection, name: str, path: Path, source: SourceConfig) -> tuple[str, list[str]]:
    """A relation over the raw file with a 1-based `_row` number; returns its name and the files
    it reads at query time (a view over Parquet), which the locked connection may still read."""
    files = sorted(str(f.resolve()) for f in path.parent.glob(path.name))
    if not files:
        raise DataError(f"{name}: file not found: {path}")
    raw = f"raw_{name}"
    fmt = source.resolved_format
    try:
        if fmt == "parquet":
            con.execute(
                f"CREATE VIEW {raw} AS SELECT * EXCLUDE (file_row_number), file_row_number + 1 AS _row "
                f"FROM read_parquet([{', '.join(map(sql_str, files))}], file_row_number = true)"
            )
        elif fmt == "csv":
            # All text: types are checked value by value below, so one bad cell excludes one row.
            con.execute(
                f"CREATE TABLE {raw}_t AS SELECT * FROM read_csv({sql_str(str(path))}, all_varchar = true, header = true)"
            )
            con.execute(f"CREATE VIEW {raw} AS SELECT *, rowid + 1 AS _row FROM {raw}_t")
        else:
            db = f"db_{name}"
            con.execute(f"ATTACH {sql_str(str(path))} AS {db} (READ_ONLY)")
            con.execute(f"CREATE VIEW {raw} AS SELECT *, rowid + 1 AS _row FROM {db}.{ident(source.table)}")
        con.execute(f"SELECT * FROM {raw} LIMIT 1").fetchall()
    except duckdb.Error as exc:
        raise DataError(f"{name}: cannot read {path}: {str(exc).splitlines()[0]}") from None
    return raw, files if fmt == "parquet" else []


def _reason_text(column: str, code: Reason, why: str) -> str:
    return sql_str(_SEP.join((column, code, why)))


def _first(values, n: int = 5) -> str:
    values = list(values)
    return ", ".join(map(str, values[:n])) + (f" and {len(values) - n:,} more" if len(values) > n else "")


def lock_down(con: duckdb.DuckDBPyConnection, readable: list[str]) -> None:
    """From now on the connection reads only `readable` (and what is attached or loaded already):
    no other file, no writing, no network, and no setting can undo it."""
    con.execute(f"SET allowed_paths = [{', '.join(map(sql_str, readable))}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _typed(col: Column, raw: str) -> str:
    """SQL casting a raw column to its canonical type; NULL where the value does not cast."""
    if col.type in ("id", "string", "category"):
        return f"NULLIF(trim(CAST({raw} AS VARCHAR)), '')"
    if col.type == "date":
        return f"TRY_CAST({raw} AS DATE)"
    if col.type == "timestamp":
        return f"TRY_CAST({raw} AS TIMESTAMP)"
    if col.type == "bool":
        text = f"lower(trim(CAST({raw} AS VARCHAR)))"
        return (
            f"CASE WHEN {text} IN ('true','t','yes','y','1') THEN true "
            f"WHEN {text} IN ('false','f','no','n','0') THEN false END"
        )
    return f"TRY_CAST({raw} AS DOUBLE)"


def _checks(schema: SourceSchema, present: dict[str, str], data_end: str, floor: dt.date) -> list[tuple[str, str, Reason, str]]:
    """(column, condition that marks a bad row, reason code, reason) in the order they are reported."""
    out = []
    for col in schema.columns:
        if col.name not in present:
            continue
        raw, typed = ident(present[col.name]), f"t_{col.name}"
        if col.required and not col.nullable:
            out.append((col.name, f"{typed} IS NULL AND {raw} IS NULL",
                        Reason.MISSING_ID if col.name == "account_id" else Reason.MISSING_VALUE, "missing value"))
        what = {"date": (Reason.NOT_A_DATE, "a date"), "timestamp": (Reason.NOT_A_TIMESTAMP, "a timestamp"),
                "bool": (Reason.NOT_YES_NO, "true/false"), "number": (Reason.NOT_A_NUMBER, "a number")}.get(col.type)
        if what:
            out.append((col.name, f"{typed} IS NULL AND {raw} IS NOT NULL", what[0], f"not {what[1]}"))
        if col.type == "number":  # 'inf' and 1e309 cast to infinity: no count or amount is infinite
            out.append((col.name, f"isinf({typed})", Reason.NOT_A_NUMBER, "not a finite number"))
        if col.type in ("date", "timestamp"):
            out.append((col.name, f"CAST({typed} AS DATE) < DATE '{floor.isoformat()}'", Reason.BEFORE_DATE_FLOOR,
                        f"dated before the date floor ({floor}): a placeholder, not history (date_floor)"))
        if col.type in ("date", "timestamp") and not col.scheduled:
            out.append((col.name, f"CAST({typed} AS DATE) >= {data_end}", Reason.AFTER_DATA_END,
                        f"dated on or after the end of the data ({data_end[6:16]})"))
        if col.nonnegative:
            out.append((col.name, f"{typed} < 0", Reason.NEGATIVE, "negative value"))
        if col.min is not None:
            out.append((col.name, f"{typed} < {col.min} OR {typed} > {col.max}", Reason.OUT_OF_RANGE, f"outside {col.min:g}-{col.max:g}"))
    return out


class SourceLoader:
    """Loads the configured tables into one DuckDB connection (see module docstring)."""

    def __init__(self, config: Config, con: duckdb.DuckDBPyConnection | None = None, sample: int | None = REJECTION_SAMPLE):
        self.config = config
        self.con = con or duckdb.connect()
        self.sample = sample
        self.present: dict[str, dict[str, str]] = {}  # table -> canonical -> raw column
        self.raw: dict[str, str] = {}
        self.files: list[str] = []
        self.notes: list[str] = []
        self.dropped = 0  # accounts left out whole (churn.unreadable_subscriptions: drop_account)

    def load(self) -> LoadedSources:
        # subscriptions right after accounts: an unreadable row there may drop accounts from every later table
        order = ["accounts", "subscriptions"] + [n for n in self.config.sources if n not in ("accounts", "subscriptions")]
        for name in order:
            self._map_columns(name)
        first_event, data_end = self._data_span()
        end_sql = f"DATE '{data_end.isoformat()}'"
        for name in order:
            self._mark(name, end_sql)
            if name == "subscriptions":
                self._unreadable_subscriptions()
        rejections, counts, tallies, late = [], {}, [], {}
        for name in order:
            rejected, counts[name], tally, late[name] = self._finish(name, end_sql)
            rejections.append(rejected)
            tallies.append(tally)
            if late[name]:
                self.notes.append(f"{name}: {late[name]:,} row(s) dated on or after the data end ({data_end}) left out")
        found = [r for r in rejections if len(r)]
        frame = pd.concat(found, ignore_index=True) if found else no_rejections()
        tally = pd.concat(tallies, ignore_index=True)
        if len(frame) and not self.config.exclude_bad_rows:
            raise DataError("bad rows (exclude_bad_rows is off):\n" + describe_rejections(frame))
        for t in tally[tally["rows"] > self.sample].itertuples() if self.sample is not None else ():
            self.notes.append(f"{t.table}.{t.column}: {t.reason}: {t.rows:,} rows rejected, the first {self.sample:,} listed")
        columns = {n: set(p) | ({"quantity"} if n == "events" else set()) for n, p in self.present.items()}
        data_start = self._first_days(order, first_event)
        lock_down(self.con, self.files)
        return LoadedSources(self.con, columns, counts, frame, data_end, self.notes, tally, late, data_start)

    def _map_columns(self, name: str) -> None:
        source, schema = self.config.sources[name], self.config.schema(name)
        path = self.config.source_path(name)
        raw, files = _register_raw(self.con, name, path, source)
        self.files += files
        available = [r[0] for r in self.con.execute(f"DESCRIBE {raw}").fetchall() if r[0] != "_row"]
        unknown = sorted(set(source.columns) - {c.name for c in schema.columns})
        if unknown:
            raise DataError(f"{name}: `columns` maps unknown canonical column(s) {unknown}; known: {[c.name for c in schema.columns]}")
        present = {}
        for col in schema.columns:
            raw_name = source.columns.get(col.name, col.name)
            if raw_name in available:
                present[col.name] = raw_name
            elif col.required:
                mapped = f" (mapped from {raw_name!r})" if col.name in source.columns else ""
                raise DataError(f"{name} ({path}): required column {col.name!r}{mapped} not found; columns are {available}")
            elif col.name in source.columns or col.name in source.extra_columns:
                what = "extra column" if col.name in source.extra_columns else "column"
                raise DataError(f"{name} ({path}): {what} {raw_name!r} mapped to {col.name!r} not found; columns are {available}")
            else:
                self.notes.append(f"{name}: no column {col.name!r}")
        if not self.con.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]:
            raise DataError(f"{name} ({path}): the table is empty")
        self.present[name], self.raw[name] = present, raw

    def _data_span(self) -> tuple[dt.date | None, dt.date]:
        """The first day of the events, and the data end (the config's, or the day after the last event)."""
        col = ident(self.present["events"]["event_date"])
        first, latest = self.con.execute(
            f"SELECT min(TRY_CAST({col} AS DATE)), max(TRY_CAST({col} AS DATE)) FROM {self.raw['events']}").fetchone()
        if self.config.data_end:
            return first, self.config.data_end
        tomorrow = dt.date.today() + dt.timedelta(days=1)
        return first, min(latest + dt.timedelta(days=1), tomorrow) if latest else tomorrow

    def _first_days(self, names: list[str], first_event: dt.date | None) -> dict[str, dt.date]:
        """Each dated table's data start: its first clean date, or the first event if that is earlier
        (the events' own comes from `_data_span`'s scan, not one more)."""
        out = {"events": first_event} if first_event else {}
        for name in names:
            col = self.config.schema(name).time_column
            if name != "events" and col in self.present[name]:
                first = self.con.execute(f"SELECT min(CAST({col} AS DATE)) FROM src_{name}").fetchone()[0]
                out |= {name: min(d for d in (first, first_event) if d)} if first or first_event else {}
        return out

    def _mark(self, name: str, data_end: str) -> None:
        """Create `checked_<name>` (typed rows, each with its first reason to be rejected or NULL) and
        `bad_<name>` (the rejected rows by number)."""
        schema, present, raw = self.config.schema(name), self.present[name], self.raw[name]
        checks = _checks(schema, present, data_end, self.config.date_floor)
        if name not in ("accounts", "subscriptions") and self.dropped:  # before unknown_account: they are known
            checks.append(("account_id", f"t_account_id IN (SELECT account_id FROM {DROPPED})", Reason.ACCOUNT_DROPPED, DROPPED_WHY))
        if name != "accounts":
            checks.append(("account_id", "t_account_id NOT IN (SELECT t_account_id FROM checked_accounts WHERE _reason IS NULL)",
                           Reason.UNKNOWN_ACCOUNT, "account_id not in accounts"))
        if schema.key and schema.key in present:
            checks.append((schema.key, f"count(*) OVER (PARTITION BY t_{schema.key}) > 1", Reason.DUPLICATE_ID, f"duplicate {schema.key}"))
        reason = "CASE " + " ".join(f"WHEN {cond} THEN {_reason_text(col, code, why)}" for col, cond, code, why in checks) + " END"
        # Events can be hundreds of millions of rows: checked on the fly rather than copied.
        kind = "VIEW" if name == "events" else "TABLE"
        self.con.execute(f"CREATE {kind} checked_{name} AS SELECT _row, {self._typed(name)}, {reason} AS _reason FROM {raw}")
        # Every check (a join to the accounts, each condition) runs once, here: the bad rows are kept
        # by number, and the metric scans read the typed rows minus those instead of checking again.
        self.con.execute(f"CREATE TEMP TABLE bad_{name} AS SELECT _row, _reason FROM checked_{name} WHERE _reason IS NOT NULL")

    def _typed(self, name: str) -> str:
        schema = self.config.schema(name)
        return ", ".join(f"{_typed(schema.column(c), ident(r))} AS t_{c}" for c, r in self.present[name].items())

    def _unreadable_subscriptions(self) -> None:
        """Churn is read from the subscriptions (an account's latest row, its first start): leaving out a
        row that cannot be read would silently turn a churned account into a retained one. So such rows
        stop the build, or (`churn.unreadable_subscriptions: drop_account`) their accounts are left out
        whole. Rows of accounts not in the accounts table decide nothing: those accounts get no label."""
        part = {i: f"split_part(_reason, {sql_str(_SEP)}, {i})" for i in (1, 2, 3)}
        rows = self.con.execute(
            f"SELECT _row, t_account_id, {part[1]} AS col, {part[3]} AS why FROM checked_subscriptions "
            f"WHERE _reason IS NOT NULL AND {part[2]} <> {sql_str(Reason.UNKNOWN_ACCOUNT)} ORDER BY _row").df()
        if not len(rows):
            return
        present = self.present["subscriptions"]  # a column with no readable value is mis-mapped: say that first
        self._column_type_errors("subscriptions", present, self._rejections("subscriptions", self.raw["subscriptions"], present))
        path, policy = self.config.source_path("subscriptions"), self.config.churn.unreadable_subscriptions
        anonymous = rows[rows["t_account_id"].isna()]
        if policy == "stop" or len(anonymous):
            shown = anonymous if len(anonymous) else rows
            accounts = shown["t_account_id"].dropna().unique()
            listed = "; ".join(f"{col} {why}: row(s) {_first(g['_row'])}" for (col, why), g in shown.groupby(["col", "why"], sort=False))
            whose = (f"of {len(accounts):,} account(s) ({_first(accounts)})" if len(accounts) else "with no account id")
            fix = ("their accounts cannot be told, so they cannot be left out: fix or remove these rows" if len(anonymous) else
                   "fix these rows, or set churn.unreadable_subscriptions: drop_account to leave those accounts out whole")
            raise DataError(f"subscriptions ({path}): {len(shown):,} row(s) {whose} cannot be used, and a subscriptions row "
                            f"decides churn (left out, a churned account would read as retained): {listed}; {fix}")
        self.con.execute(f"CREATE TEMP TABLE {DROPPED} AS SELECT DISTINCT t_account_id AS account_id FROM checked_subscriptions "
                         f"WHERE _row IN ({', '.join(map(str, rows['_row']))})")
        self.dropped = len(rows["t_account_id"].unique())
        for name in ("accounts", "subscriptions"):
            self.con.execute(f"UPDATE checked_{name} SET _reason = {_reason_text('account_id', Reason.ACCOUNT_DROPPED, DROPPED_WHY)} "
                             f"WHERE _reason IS NULL AND t_account_id IN (SELECT account_id FROM {DROPPED})")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE bad_{name} AS SELECT _row, _reason FROM checked_{name} WHERE _reason IS NOT NULL")
        self.notes.append(f"subscriptions: {self.dropped:,} account(s) left out whole (churn.unreadable_subscriptions: drop_account): "
                          f"{len(rows):,} row(s) deciding their churn cannot be used ({_first(rows['t_account_id'].unique())}); "
                          f"every row of theirs in every table is rejected ({Reason.ACCOUNT_DROPPED})")

    def _finish(self, name: str, data_end: str) -> tuple[pd.DataFrame, int, pd.DataFrame, int]:
        """Create `src_<name>` (clean rows); return the rejected rows (a sample), the clean count,
        the count per rejection reason and the rows dated on or after the data end."""
        present, raw = self.present[name], self.raw[name]
        total = self.con.execute(f"SELECT count(*) FROM {raw}").fetchone()[0]
        part = {i: f"split_part(_reason, {sql_str(_SEP)}, {i})" for i in (1, 2, 3)}
        tally = self.con.execute(
            f"SELECT {sql_str(name)} AS \"table\", {part[1]} AS \"column\", {part[2]} AS code, {part[3]} AS reason, "
            f"count(*) AS rows FROM bad_{name} GROUP BY ALL ORDER BY min(_row)"
        ).df()
        late = int(tally.loc[tally["code"] == Reason.AFTER_DATA_END, "rows"].sum())
        tally = tally[tally["code"] != Reason.AFTER_DATA_END].reset_index(drop=True)
        bad = int(tally["rows"].sum())
        rejected = self._rejections(name, raw, present) if bad else no_rejections()
        self._column_type_errors(name, present, rejected)
        if bad + late == total:
            why = describe_rejections(rejected) if bad else f"  every row is dated on or after the data end ({data_end[6:16]})"
            raise DataError(f"{name}: every row is bad, nothing left to use:\n" + why)
        clean = f"(SELECT _row, {self._typed(name)} FROM {raw}) ANTI JOIN bad_{name} USING (_row)" if name == "events" \
            else f"checked_{name} WHERE _reason IS NULL"
        self._clean_view(name, present, clean)
        return rejected, total - bad - late, tally, late

    def _column_type_errors(self, name: str, present: dict[str, str], rejected: pd.DataFrame) -> None:
        """A column in which no value has the expected type is mis-mapped or mistyped, not dirty."""
        for col in present:
            failed = rejected[(rejected["column"] == col) & rejected["reason"].str.startswith("not ")]
            if len(failed) and not self.con.execute(
                f"SELECT count(*) FROM checked_{name} WHERE t_{col} IS NOT NULL"
            ).fetchone()[0]:
                raise DataError(f"{name}: column {col!r} ({present[col]!r}) has no value of the right type:\n" + describe_rejections(failed))

    def _rejections(self, name: str, raw: str, present: dict[str, str]) -> pd.DataFrame:
        raw_cols = {c: f"CAST(r.{ident(r)} AS VARCHAR)" for c, r in present.items()}
        part = {i: f"split_part(_reason, {sql_str(_SEP)}, {i})" for i in (1, 2, 3)}
        value = "CASE " + " ".join(f"WHEN {part[1]} = {sql_str(c_)} THEN {e}" for c_, e in raw_cols.items()) + " END"
        sample = "" if self.sample is None else \
            f"QUALIFY row_number() OVER (PARTITION BY {part[1]}, {part[2]} ORDER BY _row) <= {self.sample}"
        frame = self.con.execute(
            f"WITH c AS (SELECT * FROM bad_{name} WHERE {part[2]} <> {sql_str(Reason.AFTER_DATA_END)} {sample}) "
            f"SELECT {sql_str(name)} AS \"table\", c._row AS row, {raw_cols['account_id']} AS account_id, "
            f"{part[1]} AS \"column\", {value} AS value, {part[2]} AS code, {part[3]} AS reason "
            f"FROM c JOIN {raw} r USING (_row) ORDER BY c._row"
        ).df()
        return frame[REJECTION_COLUMNS]

    def _clean_view(self, name: str, present: dict[str, str], clean: str) -> None:
        cols = [f"t_{c} AS {c}" for c in present]
        if name == "events":
            if "quantity" not in present:
                cols.append("1.0 AS quantity")
            kinds = self.config.sources[name].event_kinds
            when = " ".join(f"WHEN t_event_type IN ({', '.join(map(sql_str, types))}) THEN {sql_str(kind)}" for kind, types in kinds.items())
            cols.append(f"CASE {when} ELSE t_event_type END AS event_kind" if kinds else "t_event_type AS event_kind")
        self.con.execute(f"CREATE VIEW src_{name} AS SELECT {', '.join(cols)} FROM {clean}")


def load_sources(config: Config, con: duckdb.DuckDBPyConnection | None = None,
                 sample: int | None = REJECTION_SAMPLE) -> LoadedSources:
    """Register every configured table as a checked, canonical view on a DuckDB connection, then
    lock the connection (see the module docstring)."""
    return SourceLoader(config, con, sample).load()
