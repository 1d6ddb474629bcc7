"""The score history: every recorded scoring run in one DuckDB file, so that a CSM can see why a
score moved between two dates and a model change is never mistaken for a change of behaviour.

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
from pathlib import Path

import duckdb
import pandas as pd

from healthscore.dataset import FeatureSpec
from healthscore.scoring.reasons import REASONS, format_value, points_text

DEFAULT_DB = Path("scores.duckdb")

SCORE_COLUMNS = {
    "account_id": "VARCHAR",
    "as_of": "DATE",
    "churn_probability": "DOUBLE",
    "health_score": "DOUBLE",
    "health_percentile": "DOUBLE",
    "tier": "VARCHAR",
    "tier_color": "VARCHAR",
    **{f"{side}_{k}_{part}": kind
       for side in ("reason", "strength") for k in range(1, REASONS + 1)
       for part, kind in (("code", "VARCHAR"), ("text", "VARCHAR"), ("points", "DOUBLE"))},
    "baseline_score": "DOUBLE",
    "contributions": "JSON",
    "metric_values": "JSON",
    "model_name": "VARCHAR",
    "model_version": "VARCHAR",
    "model_run_id": "VARCHAR",
    "scored_at": "TIMESTAMP",  # UTC
}

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

CHANGE_COLUMNS = ["account_id", "score_from", "score_to", "delta", "tier_from", "tier_to", "model_from", "model_to",
                  "model_changed", "explanation", "metric_changes"]
EXPLAINED = 3  # metrics named in a change's explanation


def _connect(db_path: Path, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(db_path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")  # scored_at strings without an offset are UTC, as batch writes them
    return con


def _reader(path: Path) -> str:
    """The DuckDB table function for a scores file. CSV is read as text and cast column by column:
    the sniffer would otherwise turn account ids like 00123 into numbers."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "read_csv(?, header = true, all_varchar = true)"
    if suffix in (".parquet", ".pq"):
        return "read_parquet(?)"
    raise ValueError(f"{path}: scores files are .parquet or .csv")


def record_run(db_path: str | Path, scores_path: str | Path, metadata: dict, features: list[FeatureSpec]) -> int:
    """Append a scores file to the history; returns the rows recorded.

    All or nothing: one transaction, and a history file that did not exist before a failed
    ingest is removed again."""
    db_path, scores_path = Path(db_path), Path(scores_path)
    if not scores_path.exists():
        raise ValueError(f"{scores_path}: no such scores file")
    reader = _reader(scores_path)
    created = not db_path.exists()
    try:
        with _connect(db_path) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                rows = _ingest(con, reader, scores_path, metadata, features)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
    except BaseException:
        if created:
            for leftover in (db_path, db_path.with_name(db_path.name + ".wal")):
                leftover.unlink(missing_ok=True)
        raise
    return rows


def _ingest(con, reader: str, path: Path, metadata: dict, features: list[FeatureSpec]) -> int:
    con.execute(SCHEMA)
    found = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {reader}", [str(path)]).fetchall()}
    missing = [c for c in SCORE_COLUMNS if c not in found]
    if missing:
        raise ValueError(f"{path}: not a scores file, missing columns {', '.join(missing)}")
    casts = ",\n    ".join(
        "CAST(CAST(scored_at AS TIMESTAMPTZ) AS TIMESTAMP) AS scored_at" if name == "scored_at"
        else f"CAST({name} AS {kind}) AS {name}"
        for name, kind in SCORE_COLUMNS.items())
    con.execute(f"CREATE OR REPLACE TEMP TABLE staged AS\nSELECT\n    {casts}\nFROM {reader}", [str(path)])

    rows, no_key, models = con.execute("""
        SELECT count(*),
               count_if(account_id IS NULL OR as_of IS NULL OR model_name IS NULL OR model_version IS NULL),
               count(DISTINCT (model_name, model_version))
        FROM staged""").fetchone()
    if rows == 0:
        raise ValueError(f"{path}: no scores to record")
    if no_key:
        raise ValueError(f"{path}: {no_key} rows lack an account_id, as_of or model; they cannot be placed in the history")
    if models > 1:
        raise ValueError(f"{path}: scores from {models} models in one file; record one model's run at a time")
    dupes = con.execute("""
        SELECT account_id || ' at ' || as_of FROM staged
        GROUP BY account_id, as_of HAVING count(*) > 1 ORDER BY 1 LIMIT 5""").fetchall()
    if dupes:
        raise ValueError(f"{path}: accounts scored more than once for the same date: {', '.join(d[0] for d in dupes)}")

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


def _date(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def open_history(db_path: str | Path) -> duckdb.DuckDBPyConnection:
    db_path = Path(db_path)
    if not db_path.exists():
        raise ValueError(f"no score history at {db_path}: record a scoring run first (healthscore score)")
    con = _connect(db_path, read_only=True)
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'scores'").fetchone()[0]:
        con.close()
        raise ValueError(f"{db_path} holds no score history (no scores table)")
    return con


def _dates(con, account_id: str | None = None) -> list[dt.date]:
    where, params = ("WHERE account_id = ?", [account_id]) if account_id is not None else ("", [])
    return [row[0] for row in con.execute(f"SELECT DISTINCT as_of FROM scores {where} ORDER BY as_of", params).fetchall()]


def _date_list(dates: list[dt.date]) -> str:
    return ", ".join(str(d) for d in dates) if dates else "none"


# One row per account and date: when several runs scored the same date, the latest one counts.
LATEST = """
    SELECT * FROM scores
    WHERE as_of = ?
    QUALIFY row_number() OVER (PARTITION BY account_id ORDER BY scored_at DESC, model_version DESC) = 1"""


def _features(con) -> dict[tuple[str, str], dict[str, FeatureSpec]]:
    found: dict[tuple[str, str], dict[str, FeatureSpec]] = {}
    cursor = con.execute("SELECT * FROM model_features")
    names = [d[0] for d in cursor.description]
    for row in cursor.fetchall():
        record = dict(zip(names, row))
        key = (record.pop("model_name"), record.pop("model_version"))
        found.setdefault(key, {})[record["code"]] = FeatureSpec(**record)
    return found


def _value_text(feature: FeatureSpec | None, value, missing: str = "none") -> str:
    if value is None:
        return missing
    if feature is None or (feature.kind == "numeric" and isinstance(value, str)):
        return str(value)
    return format_value(feature, value)


def changes(db_path: str | Path, from_date: str | dt.date, to_date: str | dt.date, min_points: float = 10.0) -> pd.DataFrame:
    """Accounts scored at both dates whose tier changed or whose score moved by at least
    `min_points`, biggest drops first, each with the metrics that moved it."""
    start, end = _date(from_date), _date(to_date)
    with open_history(db_path) as con:
        dates = _dates(con)
        for day in (start, end):
            if day not in dates:
                raise ValueError(f"{db_path}: no scores recorded for {day}; the history has scores for {_date_list(dates)}")
        moved = con.execute(f"""
            WITH before AS ({LATEST}), after AS ({LATEST})
            SELECT account_id,
                   before.health_score AS score_from, after.health_score AS score_to,
                   after.health_score - before.health_score AS delta,
                   before.tier AS tier_from, after.tier AS tier_to,
                   before.model_name AS model_name_from, after.model_name AS model_name_to,
                   before.model_version AS model_from, after.model_version AS model_to,
                   before.contributions AS points_from, after.contributions AS points_to,
                   before.metric_values AS values_from, after.metric_values AS values_to
            FROM before JOIN after USING (account_id)
            WHERE before.tier <> after.tier OR abs(after.health_score - before.health_score) >= ?
            ORDER BY delta, account_id""", [start, end, min_points]).df()
        features = _features(con)
    if moved.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    moved["model_changed"] = (moved["model_name_from"] != moved["model_name_to"]) | (moved["model_from"] != moved["model_to"])
    metric_changes = [
        _metric_changes(features.get((r.model_name_from, r.model_from), {}) | features.get((r.model_name_to, r.model_to), {}),
                        json.loads(r.points_from), json.loads(r.points_to), json.loads(r.values_from), json.loads(r.values_to))
        for r in moved.itertuples()
    ]
    moved["explanation"] = [_explanation(m) for m in metric_changes]
    moved["metric_changes"] = [json.dumps(m) for m in metric_changes]
    return moved[CHANGE_COLUMNS].reset_index(drop=True)


def _metric_changes(features: dict[str, FeatureSpec], points_from: dict, points_to: dict,
                    values_from: dict, values_to: dict) -> list[dict]:
    """Every metric's points and value at both dates, largest |change of points| first.
    `features` is the to-model's specs over the from-model's, so texts follow the newer model."""
    found = []
    for code in dict.fromkeys([*points_to, *points_from]):
        before, after = points_from.get(code, 0.0), points_to.get(code, 0.0)
        feature = features.get(code)
        found.append({
            "code": code, "label": feature.label if feature else code,
            "value_from": values_from.get(code), "value_to": values_to.get(code),
            "value_from_text": _value_text(feature, values_from.get(code)),
            "value_to_text": _value_text(feature, values_to.get(code)),
            "points_from": before, "points_to": after, "change": round(after - before, 3),
        })
    return sorted(found, key=lambda c: -abs(c["change"]))


def _explanation(changes: list[dict]) -> str:
    """The metrics that moved the score most. A metric whose value stayed the same is named only
    when no metric changed value: its points moved with the others (the score's slope), it did
    not move the score itself. After a model change, points move with unchanged values too."""
    moved = [c for c in changes if abs(c["change"]) >= 0.05]
    changed = [c for c in moved if c["value_from"] != c["value_to"]]
    return "; ".join(_change_text(c) for c in (changed or moved)[:EXPLAINED])


def _change_text(change: dict) -> str:
    return f"{change['label']} {change['value_from_text']} -> {change['value_to_text']}: {points_text(change['change'])}"


def account_history(db_path: str | Path, account_id: str, as_of: str | dt.date | None = None) -> dict:
    """One account's score at a date (its latest date by default) broken into every metric's
    points, and its score over time."""
    with open_history(db_path) as con:
        dates = _dates(con, account_id)
        if not dates:
            raise ValueError(f"{db_path}: no scores recorded for account {account_id!r}")
        day = _date(as_of) if as_of is not None else dates[-1]
        if day not in dates:
            raise ValueError(f"{db_path}: account {account_id!r} has no score for {day}; it has scores for {_date_list(dates)}")
        cursor = con.execute(f"SELECT * FROM ({LATEST}) WHERE account_id = ?", [day, account_id])
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
        cursor = con.execute("""
            SELECT as_of, health_score, tier, tier_color, model_name, model_version
            FROM scores WHERE account_id = ?
            QUALIFY row_number() OVER (PARTITION BY as_of ORDER BY scored_at DESC, model_version DESC) = 1
            ORDER BY as_of""", [account_id])
        history = [dict(zip([d[0] for d in cursor.description], r)) for r in cursor.fetchall()]
        features = _features(con).get((row["model_name"], row["model_version"]), {})
    row["contributions"], row["metric_values"] = json.loads(row["contributions"]), json.loads(row["metric_values"])
    row["scored_at"] = row["scored_at"].replace(tzinfo=dt.timezone.utc).isoformat()
    contributions = []
    for code, pts in row["contributions"].items():
        feature, value = features.get(code), row["metric_values"].get(code)
        missing = (feature.missing_text if feature else "") or "none"
        contributions.append({"code": code, "label": feature.label if feature else code, "value": value,
                              "value_text": _value_text(feature, value, missing), "points": pts})
    return {
        "account_id": account_id,
        "as_of": day,
        "score": row,
        "contributions": sorted(contributions, key=lambda c: c["points"]),
        "history": history,
    }
