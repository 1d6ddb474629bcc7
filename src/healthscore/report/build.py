"""The report's data model: every figure the page shows, computed once in Python.

The page draws and filters what is built here, so each number can be tested without a browser,
and the CSV export reads the same account rows as the table. Only a metric value's percentile is
left to the page (against the model's reference quantiles, embedded once) to keep the file small.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.dataset import FeatureSpec
from healthscore.history.changes import changes
from healthscore.history.overrides import csm_tiers
from healthscore.model.estimator import FeatureDistribution
from healthscore.report.forecast import forecast_panel
from healthscore.report.inputs import read_runs, read_scores, resolve_model
from healthscore.report.kpis import kpis
from healthscore.report.playbooks import FALLBACK, HIGH_HEALTH, action_for, load_playbooks
from healthscore.scores_file import REASONS, TIERS, reason_columns

MIN_POINTS = 5.0  # a score move of this size is listed in the movement section
LISTED = 15  # accounts per movement list; the table holds them all
HISTOGRAM_BARS = 50  # at most; the bar width is the first of BAR_WIDTHS that fits
BAR_WIDTHS = (0.5, 1, 2, 2.5, 5)
TIER_RANK = {tier: rank for rank, tier in enumerate(reversed(TIERS))}  # unhealthy 0 < at_risk 1 < healthy 2
ATTRIBUTES = ("mrr", "segment", "plan")  # metric values the report shows beside the score
REASON_PARTS = reason_columns()


@dataclass
class Report:
    accounts: pd.DataFrame  # one row per account: the page's table and the CSV export
    payload: dict  # everything the page shows, JSON-ready
    notes: list[str]


def build_report(scores_path: str | Path, history: str | Path | None = None, model: str | None = None,
                 playbooks: str | Path | None = None, forecast: str | Path | None = None) -> Report:
    scores = read_scores(scores_path)
    health_model, ref = resolve_model(scores, model)
    books = load_playbooks(playbooks)
    features, tiers = health_model.features, health_model.tiers_
    codes = [f.code for f in features]
    values = _json_columns(scores["metric_values"], list(dict.fromkeys([*codes, *ATTRIBUTES])))
    points = _json_columns(scores["contributions"], codes)
    as_of = None if pd.isna(scores["as_of"].iloc[0]) else scores["as_of"].iloc[0]
    notes: list[str] = []
    if values["mrr"].isna().all():
        notes.append("The scores carry no MRR (metric `mrr`), so MRR, ARPA, revenue at risk and expansion show as 0.")
    runs, start = _runs(history, as_of, notes)
    previous = runs[runs["as_of"] == start].set_index("account_id") if start else None
    accounts = account_rows(scores, values, features, books, tiers.labels, previous)
    # the CSM's tier beside the model's, never in its place
    accounts = accounts.join(csm_tiers(history), on="account_id")
    scale = tiers.scale
    cutoffs = {"healthy_from": scale.healthy_from, "unhealthy_below": scale.unhealthy_below}
    payload = {
        "title": f"Customer health report: {as_of or 'undated scores'}",
        "as_of": as_of,
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "source": Path(scores_path).name,
        "tiers": [{"code": t, "label": tiers.labels[t], "color": tiers.colors[t]} for t in TIERS],
        "cutoffs": cutoffs,
        "portfolio": _portfolio(accounts),
        "kpis": kpis(accounts, None if previous is None else previous.reset_index()),
        "period": {"start": start, "end": as_of},
        "scale": {"points_to_double_odds": scale.points_to_double_odds, "horizon_days": health_model.provenance_.horizon_days,
                  "table": health_model.score_table().round(4).to_numpy().tolist()},
        "histogram": histogram(accounts["health_score"], accounts["tier"], cutoffs["unhealthy_below"]),
        "movement": _movement(history, runs, start, as_of, accounts, notes) if start else None,
        "metrics": [_metric(f, health_model.reference_.features.get(f.code)) for f in features],
        "playbooks": books,
        "accounts": _table(accounts),
        "details": _details(accounts, scores["baseline_score"], values, points, features, runs),
        "model": _model_facts(ref, health_model.provenance_),
        "forecast": forecast_panel(forecast) if forecast is not None else None,
        "notes": notes,
    }
    return Report(accounts, payload, notes)


def _runs(history: str | Path | None, as_of: dt.date | None, notes: list[str]) -> tuple[pd.DataFrame | None, dt.date | None]:
    """The history's runs up to `as_of` and the date of the one before it (the period's start)."""
    if history is None:
        notes.append("Churn rate, CRR, expansion MRR, trends and movement compare two scoring runs: "
                     "pass the score history (--history scores.duckdb) to see them.")
        return None, None
    if as_of is None:
        notes.append("These scores have no date (as_of), so they cannot be placed in the score history.")
        return None, None
    runs = read_runs(history, as_of)
    runs["as_of"] = pd.to_datetime(runs["as_of"]).dt.date
    earlier = [d for d in runs["as_of"].unique() if d < as_of]
    if not earlier:
        notes.append(f"The score history has no run before {as_of}: churn rate, CRR, expansion MRR, trends and "
                     "movement need one.")
        return runs, None
    return runs, max(earlier)


def _json_columns(column: pd.Series, names: list[str]) -> pd.DataFrame:
    """A JSON-per-row column as one column per name (all empty for a name no row has)."""
    records = [json.loads(v) if isinstance(v, str) else {} for v in column]
    return pd.DataFrame.from_records(records, index=column.index).reindex(columns=names)


def reason_families(codes: pd.Series, features: list[FeatureSpec]) -> pd.Series:
    """The driver family of each reason code. A code is the metric code in capitals plus where
    the value sits (`_LOW`, `_MISSING`, a category), so the longest matching metric wins."""
    stems = sorted(((f.code.upper() + "_", f.family) for f in features), key=lambda s: -len(s[0]))

    def family(code) -> str | None:
        if not isinstance(code, str):
            return None
        return next((fam for stem, fam in stems if code.startswith(stem)), FALLBACK)

    return codes.map({code: family(code) for code in codes.dropna().unique()})


def account_rows(scores: pd.DataFrame, values: pd.DataFrame, features: list[FeatureSpec], books: dict[str, str],
                 labels: dict[str, str], previous: pd.DataFrame | None) -> pd.DataFrame:
    """One row per account with everything the table and a CRM import need, reasons flattened."""
    out = scores[["account_id", "account_name", "csm_owner"]].copy()
    for attribute in ("segment", "plan"):
        out[attribute] = values[attribute].astype("string")
    out["as_of"] = scores["as_of"]
    out["health_score"] = scores["health_score"]
    out["health_percentile"] = scores["health_percentile"]
    out["tier"] = scores["tier"]
    out["tier_label"] = scores["tier"].map(labels)
    out["churn_probability"] = scores["churn_probability"]
    out["mrr"] = pd.to_numeric(values["mrr"], errors="coerce")
    out["revenue_at_risk"] = out["mrr"] * out["churn_probability"]
    if previous is not None:
        out["previous_score"] = out["account_id"].map(previous["health_score"])
        out["previous_tier"] = out["account_id"].map(previous["tier"])
    else:
        out["previous_score"], out["previous_tier"] = np.nan, None
    out["score_change"] = out["health_score"] - out["previous_score"]
    for k in range(1, REASONS + 1):
        code = scores[f"reason_{k}_code"]
        out[f"reason_{k}_family"] = reason_families(code, features)
        out[f"reason_{k}_action"] = out[f"reason_{k}_family"].map(lambda fam: action_for(books, fam), na_action="ignore")
    healthy = out["tier"] == "healthy"
    out["next_action"] = np.where(healthy, books[HIGH_HEALTH], out["reason_1_action"].fillna(books[FALLBACK]))
    out = pd.concat([out, scores[REASON_PARTS + ["model_name", "model_version"]]], axis=1)
    return out


def _portfolio(accounts: pd.DataFrame) -> dict:
    tiers = {t: accounts[accounts["tier"] == t] for t in TIERS}
    return {t: {"accounts": len(rows), "mrr": float(rows["mrr"].sum()), "revenue_at_risk": float(rows["revenue_at_risk"].sum())}
            for t, rows in tiers.items()}


def histogram(scores: pd.Series, tier: pd.Series, unhealthy_below: float) -> dict:
    """Bars from where the accounts are to 100, per tier, and one bar for the few far below."""
    scores = scores.clip(0, 100)
    low = min(float(np.quantile(scores, 0.02)), unhealthy_below - 5)
    low = max(0.0, math.floor(low / 10) * 10)
    width = next((w for w in BAR_WIDTHS if (100 - low) / w <= HISTOGRAM_BARS), BAR_WIDTHS[-1])
    edges = np.linspace(low, 100, round((100 - low) / width) + 1)
    return {"low": low, "width": width,
            "counts": {t: np.histogram(scores[tier == t], bins=edges)[0].tolist() for t in TIERS},
            "below": {t: int(((scores < low) & (tier == t)).sum()) for t in TIERS}}


def _movement(history: str | Path, runs: pd.DataFrame, start: dt.date, end: dt.date, accounts: pd.DataFrame,
              notes: list[str]) -> dict | None:
    """Tier changes both ways and the biggest drops, with the metrics that moved them."""
    if end not in set(runs["as_of"]):
        notes.append(f"The score history has no run for {end}: record these scores with `healthscore score --history` "
                     "to see which accounts moved and why.")
        return None
    moved = changes(history, start, end, MIN_POINTS)
    names = accounts.set_index("account_id")["account_name"]
    rank_from, rank_to = moved["tier_from"].map(TIER_RANK), moved["tier_to"].map(TIER_RANK)

    def listed(rows: pd.DataFrame) -> list[dict]:
        return [{"id": r.account_id, "name": _plain(names.get(r.account_id)), "from": r.score_from, "to": r.score_to,
                 "delta": r.delta, "tier_from": r.tier_from, "tier_to": r.tier_to, "why": r.explanation,
                 "model_changed": bool(r.model_changed)} for r in rows.head(LISTED).itertuples()]

    up, down = moved[rank_to > rank_from], moved[rank_to < rank_from]
    drops = moved[moved["delta"] <= -MIN_POINTS]  # already biggest drop first
    if switched := int(moved["model_changed"].sum()):
        notes.append(f"{switched} of the accounts that moved were scored by another model version on {start}: "
                     "part of their move is the model's.")
    return {
        "from": start, "to": end, "min_points": MIN_POINTS,
        "counts": {"tier_up": len(up), "tier_down": len(down), "drops": len(drops),
                   "rises": int((moved["delta"] >= MIN_POINTS).sum())},
        "tier_up": listed(up.sort_values("delta", ascending=False)),
        "tier_down": listed(down),
        "drops": listed(drops),
    }


def _metric(feature: FeatureSpec, reference: FeatureDistribution | None) -> dict:
    """What the page needs to word a metric and rank a value among the training accounts."""
    quantiles = (reference.quantiles if reference else None) or []
    categories = (reference.categories if reference else None) or {}
    return {"code": feature.code, "label": feature.label, "kind": feature.kind, "format": feature.format,
            "family": feature.family, "good": feature.good_direction, "missing": feature.missing_text,
            "quantiles": [_compact(round(q, 4)) for q in quantiles],
            "categories": {k: round(v, 4) for k, v in categories.items()}}


def _table(accounts: pd.DataFrame) -> dict:
    """Column arrays (not one object per account): the page holds 20,000 accounts in a few MB.
    Repeated texts (owner, segment, plan) are stored once and referenced by index."""
    columns = {}
    for name in ("csm_owner", "segment", "plan"):
        labels = accounts[name].fillna("").astype(str)
        uniques = sorted(labels.unique())
        columns[name] = {"values": uniques, "index": labels.map({v: i for i, v in enumerate(uniques)}).tolist()}
    return {
        "id": accounts["account_id"].tolist(),
        "name": [_plain(v) for v in accounts["account_name"]],
        **columns,
        "tier": accounts["tier"].map({t: i for i, t in enumerate(TIERS)}).tolist(),
        "csm_tier": [_compact(v) for v in accounts["csm_tier"].map({t: i for i, t in enumerate(TIERS)})],
        "csm_expired": [bool(v) if isinstance(v, (bool, np.bool_)) else None for v in accounts["csm_expired"]],
        "score": _numbers(accounts["health_score"], 2),
        "percentile": _numbers(accounts["health_percentile"], 1),
        "probability": _numbers(accounts["churn_probability"], 5),
        "mrr": _numbers(accounts["mrr"], 2),
        "revenue_at_risk": _numbers(accounts["revenue_at_risk"], 2),
        "change": _numbers(accounts["score_change"], 2),
    }


def _details(accounts: pd.DataFrame, baseline: pd.Series, values: pd.DataFrame, points: pd.DataFrame,
             features: list[FeatureSpec], runs: pd.DataFrame | None) -> dict:
    """What an account's detail view draws: points and values per metric (in the metrics' order),
    its reasons (with their driver family, for the next action) and strengths, its score over time."""
    numeric = [f.code for f in features if f.kind == "numeric"]
    shown = values[[f.code for f in features]].copy()
    shown[numeric] = shown[numeric].apply(pd.to_numeric, errors="coerce").round(3)

    def side(name: str, with_family: bool) -> list[list]:
        """Per account: [text, points(, family)] of each reason (or strength) it has."""
        columns = [zip(accounts[f"{name}_{k}_text"], accounts[f"{name}_{k}_points"].round(2),
                       accounts[f"{name}_{k}_family"] if with_family else [None] * len(accounts))
                   for k in range(1, REASONS + 1)]
        return [[[text, _compact(pts), *([family] if with_family else [])] for text, pts, family in row if isinstance(text, str)]
                for row in zip(*columns)]

    dates, trail = [], [[] for _ in range(len(accounts))]
    if runs is not None and len(runs):
        dates = sorted(runs["as_of"].unique())
        position = {d: i for i, d in enumerate(dates)}
        row_of = {a: i for i, a in enumerate(accounts["account_id"])}
        mine = runs[runs["account_id"].isin(row_of)]
        # each point carries its model, so the chart can mark where a new model took over
        for account, day, score, tier, model in zip(mine["account_id"], mine["as_of"], mine["health_score"], mine["tier"],
                                                    mine["model"]):
            trail[row_of[account]].append([position[day], round(float(score), 2), TIERS.index(tier) if tier in TIERS else None, model])
    return {
        "baseline": _numbers(baseline, 2),
        "points": [[_compact(p) for p in row] for row in points.round(2).to_numpy()],
        "values": [[_compact(v) for v in row] for row in shown.to_numpy(dtype=object)],
        "reasons": side("reason", with_family=True),
        "strengths": side("strength", with_family=False),
        "history_dates": dates,
        "history": trail,
    }


def _model_facts(ref, provenance) -> dict:
    return {"name": ref.name, "version": ref.version, "run_id": ref.run_id,
            "trained_on": provenance.trained_on, "test_metrics": provenance.test_metrics,
            "backtest": [{k: _compact(v) for k, v in row.items()} for row in provenance.backtest]}


def _numbers(column: pd.Series, digits: int) -> list:
    return [_compact(v) for v in pd.to_numeric(column, errors="coerce").round(digits)]


def _compact(value):
    """JSON-safe and short: NaN -> null, 34.0 -> 34."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, (float, np.floating)):
        if math.isnan(value) or math.isinf(value):
            return None
        return int(value) if float(value).is_integer() else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _plain(value) -> str:
    return "" if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)) else str(value)
