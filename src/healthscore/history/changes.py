"""What the score history tells a CSM: which accounts moved between two dates and why
(`changes`), one account's score broken into points with its past (`account_history`), and every
account's recent scores for the report (`score_trail`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.dataset import FeatureSpec, conform
from healthscore.errors import HistoryError, ModelNotFound
from healthscore.history.store import as_date, date_list, latest, model_features, open_history, scored_dates
from healthscore.model.estimator import HealthModel
from healthscore.model.reasons import format_value, points_text
from healthscore.registry import load_version

CHANGE_COLUMNS = ["account_id", "score_from", "score_to", "delta", "tier_from", "tier_to", "model_from", "model_to",
                  "model_changed", "model_points", "account_points", "explanation", "metric_changes"]
LONG_COLUMNS = ["account_id", "from_date", "to_date", "metric", "label", "value_from", "value_to", "points", "model_from", "model_to"]
EXPLAINED = 3  # metrics named in a change's explanation
ModelLoader = Callable[[str, str], HealthModel]


def _value_text(feature: FeatureSpec | None, value, missing: str = "none") -> str:
    if value is None:
        return missing
    if feature is None or (feature.kind == "numeric" and isinstance(value, str)):
        return str(value)
    return format_value(feature, value)


def _registered(name: str, version: str) -> HealthModel:
    return load_version(name, version)[0]


def changes(db_path: str | Path, from_date: str | dt.date, to_date: str | dt.date, min_points: float = 10.0,
            models: ModelLoader = _registered) -> pd.DataFrame:
    """Accounts scored at both dates whose tier changed or whose score moved by at least
    `min_points`, biggest drops first, each with the metrics that moved it.

    The move is attributed exactly, with the earlier date's metric values as the one reference
    point (baseline Shapley values of the later date's model): the metrics' points add up to the
    move, a metric whose value did not change gets none, and a metric with a good direction
    moves the score its way. After a model change the move is split in two: `model_points`, what
    the new model says of the same account at the earlier date, and `account_points`, what
    changed since, under the new model. `models(name, version)` loads a model that scored."""
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
                   before.metric_values AS values_from, after.metric_values AS values_to
            FROM before JOIN after USING (account_id)
            WHERE before.tier <> after.tier OR abs(after.health_score - before.health_score) >= ?
            ORDER BY delta, account_id""", [start, end, min_points]).df()
        features = model_features(con)
    if moved.empty:
        return pd.DataFrame(columns=CHANGE_COLUMNS)
    moved["model_changed"] = (moved["model_name_from"] != moved["model_name_to"]) | (moved["model_from"] != moved["model_to"])
    moved["model_points"], moved["account_points"] = np.nan, np.nan
    metric_changes: list[list[dict]] = [[] for _ in range(len(moved))]
    explanations = [""] * len(moved)
    for (name, version), rows in moved.groupby(["model_name_to", "model_to"]).groups.items():
        at = moved.index.get_indexer(rows)
        part = moved.iloc[at]
        try:
            model = models(name, version)
        except ModelNotFound as exc:
            for i in at:
                explanations[i] = f"not attributed: model {name} v{version} cannot be loaded ({exc})"
            continue
        labels = features.get((name, version), {}) | {f.code: f for f in model.features}
        after = _frame(part["values_to"], model)
        before = _frame(part["values_from"], model)
        scale = model.tiers_.scale
        points = scale.points(model.change_contributions(after, before))
        rescored = model.health_score(model.log_odds(before))
        model_points = np.where(part["model_changed"], rescored - part["score_from"].to_numpy(), 0.0)
        moved.loc[part.index, "model_points"] = model_points
        moved.loc[part.index, "account_points"] = part["score_to"].to_numpy() - np.where(part["model_changed"], rescored,
                                                                                        part["score_from"].to_numpy())
        for k, i in enumerate(at):
            metric_changes[i] = _metric_changes(model, labels, before.iloc[k], after.iloc[k], points[k])
            explanations[i] = _explanation(metric_changes[i], moved.iloc[i], model_points[k])
    moved["explanation"] = explanations
    moved["metric_changes"] = [json.dumps(m) for m in metric_changes]
    return moved[CHANGE_COLUMNS].reset_index(drop=True)


def long_form(found: pd.DataFrame, from_date: str | dt.date, to_date: str | dt.date) -> pd.DataFrame:
    """`changes` as one row per account and metric that moved, for a file."""
    rows = [{"account_id": r.account_id, "from_date": as_date(from_date), "to_date": as_date(to_date), "metric": m["code"],
             "label": m["label"], "value_from": m["value_from_text"], "value_to": m["value_to_text"], "points": m["points"],
             "model_from": r.model_from, "model_to": r.model_to}
            for r in found.itertuples() for m in json.loads(r.metric_changes)]
    return pd.DataFrame(rows, columns=LONG_COLUMNS)


def _frame(values: pd.Series, model: HealthModel) -> pd.DataFrame:
    """The model's metrics from the history's JSON values, typed as when they were scored."""
    frame = pd.DataFrame([json.loads(v) for v in values], index=values.index)
    return conform(frame.reindex(columns=[f.code for f in model.features]), model.features)


def _metric_changes(model: HealthModel, labels: dict[str, FeatureSpec], before: pd.Series, after: pd.Series,
                    points: np.ndarray) -> list[dict]:
    """The metrics whose value changed, with their points, largest first."""
    found = []
    for f, pts in zip(model.features, points):
        old, new = _plain(before[f.code]), _plain(after[f.code])
        if old == new:
            continue
        feature = labels.get(f.code, f)
        found.append({"code": f.code, "label": feature.label, "value_from": old, "value_to": new,
                      "value_from_text": _value_text(feature, old), "value_to_text": _value_text(feature, new),
                      "points": float(pts)})
    return sorted(found, key=lambda c: -abs(c["points"]))


def _plain(value):
    """A JSON-ready value: None for missing, a float or a string otherwise."""
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, str) else float(value)


def _explanation(changes: list[dict], row, model_points: float) -> str:
    """The model change (if any) and the metrics that moved the score most."""
    parts = [f"new model v{row.model_from} -> v{row.model_to}: {points_text(model_points)}"] if row.model_changed else []
    parts += [_change_text(c) for c in changes if abs(c["points"]) >= 0.05][:EXPLAINED]
    return "; ".join(parts)


def _change_text(change: dict) -> str:
    return f"{change['label']} {change['value_from_text']} -> {change['value_to_text']}: {points_text(change['points'])}"


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
    and date, with its MRR when the scores carry it and the model that scored it."""
    with open_history(db_path) as con:
        return con.execute(f"""
            WITH recent AS (SELECT DISTINCT as_of FROM scores WHERE as_of <= ? ORDER BY as_of DESC LIMIT ?)
            SELECT account_id, as_of, health_score, tier, TRY_CAST(metric_values ->> 'mrr' AS DOUBLE) AS mrr,
                   model_name || ' v' || model_version AS model
            FROM ({latest("as_of IN (SELECT as_of FROM recent)")})
            ORDER BY as_of, account_id""", [as_of, runs]).df()
