"""The score history's storage: every recorded scoring run in one DuckDB file, so that a CSM can
see why a score moved between two dates and a model change is never mistaken for a change of
behaviour. Recording a run, opening the history, and `latest`, the rule every reader uses.

Tables (this module's own storage):
- `scores`: every column of the scores files, keyed by (account_id, as_of, model_name,
  model_version). Re-recording a date with the same model replaces its rows.
- `runs`: one row per (as_of, model) held in `scores`: when it was scored and recorded, tier
  counts, the run metadata and the drift report.
- `model_features`: how each model's metrics are labelled and formatted, so that old scores can
  be explained without loading the model that made them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import duckdb

from healthscore.dataset import FeatureSpec
from healthscore.errors import HistoryError
from healthscore.scores_file import SCORE_COLUMNS

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS scores (
    {", ".join(f"{name} {kind}" for name, kind in SCORE_COLUMNS.items())},
    PRIMARY KEY (account_id, as_of, model_name, model_version)
);
CREATE TABLE IF NOT EXISTS runs (
    as_of DATE, model_name VARCHAR, model_version VARCHAR, model_run_id VARCHAR,
    scored_at TIMESTAMP, recorded_at TIMESTAMP, source VARCHAR,
    accounts INTEGER, healthy INTEGER, at_risk INTEGER, unhealthy INTEGER, rejected INTEGER,
    metadata JSON, drift JSON,
    PRIMARY KEY (as_of, model_name, model_version)
);
CREATE TABLE IF NOT EXISTS model_features (
    model_name VARCHAR, model_version VARCHAR, code VARCHAR, label VARCHAR, kind VARCHAR,
    format VARCHAR, good_direction VARCHAR, family VARCHAR, missing_text VARCHAR,
    PRIMARY KEY (model_name, model_version, code)
);
"""

HISTORY_SUFFIXES = (".duckdb", ".db")
LOCK_WAIT = 30.0  # seconds a run waits for another process (a report, a notebook) to let go of the file


def _connect(db_path: Path, read_only: bool = False, wait: float | None = None) -> duckdb.DuckDBPyConnection:
    """A connection to a history file, waiting a while if another process holds it."""
    wait = LOCK_WAIT if wait is None else wait
    deadline = time.monotonic() + wait
    while True:
        try:
            con = duckdb.connect(str(db_path), read_only=read_only)
            break
        except duckdb.Error as exc:
            message = str(exc).splitlines()[0]
            if "lock" not in message.lower():
                raise HistoryError(f"{db_path}: not a score history DuckDB can open ({message})") from None
            if time.monotonic() >= deadline:
                raise HistoryError(f"{db_path}: locked by another process for {wait:.0f} s (a report or a notebook reading it?); "
                                   "close it and run again") from None
            time.sleep(0.25)
    con.execute("SET TimeZone = 'UTC'")  # scored_at strings without an offset are UTC, as batch writes them
    return con


def check_history(db_path: str | Path, wait: float | None = None) -> None:
    """Before a run writes anything: the history can be recorded into (a DuckDB file that is ours,
    or none yet) and no other process holds it."""
    db_path = Path(db_path)
    if db_path.suffix.lower() not in HISTORY_SUFFIXES:
        raise HistoryError(f"--history {db_path}: a score history is a DuckDB file ending in {' or '.join(HISTORY_SUFFIXES)}")
    if not db_path.exists():
        return
    if not db_path.is_file():
        raise HistoryError(f"--history {db_path}: is not a file")
    with _connect(db_path, wait=wait) as con:
        _check_ours(con, db_path)


def _check_ours(con: duckdb.DuckDBPyConnection, db_path: Path) -> None:
    tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if tables and "scores" not in tables:
        raise HistoryError(f"{db_path}: a DuckDB file that is not a score history (its tables: {', '.join(sorted(tables))}); "
                           "give another --history")


def _reader(path: Path) -> tuple[str, str]:
    """The DuckDB table function for a scores file, and what it reads. CSV is read as text and cast
    column by column: the sniffer would otherwise turn account ids like 00123 into numbers. A
    folder is the Parquet parts that Spark writes."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "read_csv(?, header = true, all_varchar = true)", str(path)
    if suffix in (".parquet", ".pq"):
        return "read_parquet(?)", str(path / "*.parquet") if path.is_dir() else str(path)
    raise HistoryError(f"{path}: scores files are .parquet or .csv")


def record_run(db_path: str | Path, scores_path: str | Path, metadata: dict, features: list[FeatureSpec]) -> int:
    """Append a scores file to the history; returns the rows recorded.

    All or nothing: one transaction, and a history file that did not exist before a failed
    ingest is removed again."""
    db_path, scores_path = Path(db_path), Path(scores_path)
    if not scores_path.exists():
        raise HistoryError(f"{scores_path}: no such scores file")
    reader, files = _reader(scores_path)
    created = not db_path.exists()
    try:
        with _connect(db_path) as con:
            _check_ours(con, db_path)
            con.execute("BEGIN TRANSACTION")
            try:
                rows = _ingest(con, reader, files, scores_path, metadata, features)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except BaseException:
        if created and db_path.exists():
            for leftover in (db_path, db_path.with_name(db_path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    return rows


def _ingest(con, reader: str, files: str, path: Path, metadata: dict, features: list[FeatureSpec]) -> int:
    con.execute(SCHEMA)
    found = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}", [files]).fetchall()}
    missing = [c for c in SCORE_COLUMNS if c not in found]
    if missing:
        raise HistoryError(f"{path}: not a scores file, missing columns {', '.join(missing)}")
    casts = ",\n    ".join(
        "CAST(CAST(scored_at AS TIMESTAMPTZ) AS TIMESTAMP) AS scored_at" if name == "scored_at"
        else f"CAST({name} AS {kind}) AS {name}"
        for name, kind in SCORE_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS\nSELECT\n    {casts}\nFROM {reader}", [files])

    rows, no_key, models = con.execute("""
        SELECT count(*),
               count_if(account_id IS NULL OR as_of IS NULL OR model_name IS NULL OR model_version IS NULL),
               count(DISTINCT (model_name, model_version))
        FROM staged""").fetchone()
    if rows == 0:
        raise HistoryError(f"{path}: no scores to record")
    if no_key:
        raise HistoryError(f"{path}: {no_key} rows lack an account_id, as_of or model; they cannot be placed in the history")
    if models > 1:
        raise HistoryError(f"{path}: scores from {models} models in one file; record one model's run at a time")
    dupes = con.execute("""
        SELECT account_id || ' at ' || as_of FROM staged
        GROUP BY account_id, as_of HAVING count(*) > 1 ORDER BY 1 LIMIT 5""").fetchall()
    if dupes:
        raise HistoryError(f"{path}: accounts scored more than once for the same date: {', '.join(d[0] for d in dupes)}")

    model_name, model_version = con.execute("SELECT any_value(model_name), any_value(model_version) FROM staged").fetchone()
    model = [model_name, model_version]
    con.execute("DELETE FROM scores WHERE model_name = ? AND model_version = ? AND as_of IN (SELECT as_of FROM staged)", model)
    con.execute(f"INSERT INTO scores ({', '.join(SCORE_COLUMNS)}) SELECT * FROM staged")

    con.execute("DELETE FROM runs WHERE model_name = ? AND model_version = ? AND as_of IN (SELECT as_of FROM staged)", model)
    recorded_at = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    con.execute("""
        INSERT INTO runs
        SELECT as_of, model_name, model_version, any_value(model_run_id), max(scored_at), ?, ?,
               count(*), count_if(tier = 'healthy'), count_if(tier = 'at_risk'), count_if(tier = 'unhealthy'), ?,
               CAST(? AS JSON), CAST(? AS JSON)
        FROM staged
        GROUP BY as_of, model_name, model_version""",
        # the drift report gets a column of its own, queryable without unpacking the metadata
        [recorded_at, str(path), metadata.get("rejected_rows"),
         json.dumps({k: v for k, v in metadata.items() if k != "drift"}, default=str),
         None if metadata.get("drift") is None else json.dumps(metadata["drift"], default=str)])

    con.execute("DELETE FROM model_features WHERE model_name = ? AND model_version = ?", model)
    if features:
        con.executemany(
            "INSERT INTO model_features VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [model + [f.code, f.label, f.kind, f.format, f.good_direction, f.family, f.missing_text] for f in features])
    return rows


def as_date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise HistoryError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def open_history(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    db_path = Path(db_path)
    if not db_path.exists():
        raise HistoryError(f"no score history at {db_path}: record a scoring run first (healthscore score)")
    con = _connect(db_path, read_only=True)
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scores'").fetchone()[0]:
        con.close()
        raise HistoryError(f"{db_path} holds no score history (no scores table)")
    return con


def open_history_for_writing(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection to a score history file, waiting like every run if another process
    holds it: for the tables recorded beside the scores (CSM overrides)."""
    return _connect(Path(db_path))


def scored_dates(con, account_id: str | None = None) -> list[dt.date]:
    where, params = ("WHERE account_id = ?", [account_id]) if account_id is not None else ("", [])
    return [row[0] for row in con.execute(f"SELECT DISTINCT as_of FROM scores {where} ORDER BY as_of", params).fetchall()]


def date_list(dates: list[dt.date]) -> str:
    return ", ".join(str(d) for d in dates) if dates else "none"


def latest(where: str = "TRUE", columns: str = "*") -> str:
    """SQL for one row per account and date from `scores`, restricted by `where`: when several runs
    scored the same date, the one scored last counts (on a tie, the higher model version, as a
    number where it is one). The one statement of that rule, for every reader of the history."""
    return f"""
    SELECT {columns} FROM scores WHERE {where}
    QUALIFY row_number() OVER (
        PARTITION BY account_id, as_of
        ORDER BY scored_at DESC, TRY_CAST(model_version AS BIGINT) DESC NULLS LAST, model_version DESC) = 1"""


def model_features(con) -> dict[tuple[str, str], dict[str, FeatureSpec]]:
    found: dict[tuple[str, str], dict[str, FeatureSpec]] = {}
    cursor = con.execute("SELECT * FROM model_features")
    names = [d[0] for d in cursor.description]
    for row in cursor.fetchall():
        record = dict(zip(names, row))
        key = (record.pop("model_name"), record.pop("model_version"))
        found.setdefault(key, {})[record["code"]] = FeatureSpec(**record)
    return found




def previous_tiers(db_path: str | Path, as_of: dt.date) -> dict[str, str]:
    """Each account's last recorded tier before `as_of` (none when the history does not exist)."""
    if not Path(db_path).exists():
        return {}
    with open_history(db_path) as con:
        rows = con.execute(f"""
            SELECT account_id, tier FROM ({latest("as_of < ?")})
            QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY as_of DESC) = 1""", [as_of]).fetchall()
    return dict(rows)
