"""What the score history tells a CSM: which accounts moved between two dates and why
(`changes`), one account's score broken into points with its past (`account_history`), and every
account's recent scores for the report (`score_trail`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pandas as pd

from healthscore.dataset import FeatureSpec
from healthscore.errors import HistoryError
from healthscore.history.store import as_date, date_list, latest, model_features, open_history, scored_dates
from healthscore.model.reasons import format_value, points_text

CHANGE_COLUMNS = ["account_id", "score_from", "score_to", "delta", "tier_from", "tier_to", "model_from", "model_to",
                  "model_changed", "explanation", "metric_changes"]
EXPLAINED = 3  # metrics named in a change's explanation



def _value_text(feature: FeatureSpec | None, value, missing: str = "none") -> str:
    if value is None:
        return missing
    if feature is None or (feature.kind == "numeric" and isinstance(value, str)):
        return str(value)
    return format_value(feature, value)


def changes(db_path: str | Path, from_date: str | dt.date, to_date: str | dt.date, min_points: float = 10.0) -> pd.DataFrame:
    """Accounts scored at both dates whose tier changed or whose score moved by at least
    `min_points`, biggest drops first, each with the metrics that moved it."""
    start, end = as_date(from_date), as_date(to_date)
    with open_history(db_path) as con:
        recorded = scored_dates(con)
        for day in (start, end):
            if day not in recorded:
                raise HistoryError(f"{db_path}: no scores recorded for {day}; the history has scores for {date_list(recorded)}")
        moved = con.execute(f"""
            WITH before AS ({latest("as_of = ?")}), after AS ({latest("as_of = ?")})
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
        features = model_features(con)
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
        recorded = scored_dates(con, account_id)
        if not recorded:
            raise HistoryError(f"{db_path}: no scores recorded for account {account_id!r}")
        day = as_date(as_of) if as_of is not None else recorded[-1]
        if day not in recorded:
            raise HistoryError(f"{db_path}: account {account_id!r} has no score for {day}; it has scores for {date_list(recorded)}")
        cursor = con.execute(latest("as_of = ? AND account_id = ?"), [day, account_id])
        row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
        cursor = con.execute(latest("account_id = ?", "as_of, health_score, tier, tier_color, model_name, model_version")
                             + " ORDER BY as_of", [account_id])
        history = [dict(zip([d[0] for d in cursor.description], r)) for r in cursor.fetchall()]
        features = model_features(con).get((row["model_name"], row["model_version"]), {})
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


def score_trail(db_path: str | Path, as_of: dt.date, runs: int) -> pd.DataFrame:
    """Every account's score at the last `runs` scoring dates up to `as_of`: one row per account
    and date, with its MRR when the scores carry it."""
    with open_history(db_path) as con:
        return con.execute(f"""
            WITH recent AS (SELECT DISTINCT as_of FROM scores WHERE as_of <= ? ORDER BY as_of DESC LIMIT ?)
            SELECT account_id, as_of, health_score, tier, TRY_CAST(metric_values ->> 'mrr' AS DOUBLE) AS mrr
            FROM ({latest("as_of IN (SELECT as_of FROM recent)")})
            ORDER BY as_of, account_id""", [as_of, runs]).df()
