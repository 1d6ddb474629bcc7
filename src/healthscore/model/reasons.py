"""Why a score is what it is: exact TreeSHAP contributions turned into health-score points, and
the scores-file columns of a batch of rows (`scores_with_reasons`), which the scoring job and
the registered model's pyfunc both return.

The model's exact contributions (TreeSHAP for trees) add up to its log-odds, and the health
score is linear in the log-odds (`HealthModel.tiers_.scale`), so each contribution times one
constant is the metric's points: baseline score + sum of points = health score exactly (before
clipping to 0-100), and a contribution is worth the same points for every account and date.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from healthscore.dataset import ACCOUNT_AGE, DATA_DAYS, FeatureSpec
from healthscore.model.estimator import FeatureDistribution, HealthModel
from healthscore.scores_file import ATTRIBUTES, REASON_SIDES, REASONS, ModelRef


def points(model: HealthModel, X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Per-metric health points (columns = feature codes) and each row's baseline score."""
    contrib = model.contributions(X)
    scale = model.tiers_.scale
    return (pd.DataFrame(scale.points(contrib[:, :-1]), columns=[f.code for f in model.features], index=X.index),
            scale.unclipped(contrib[:, -1]))


def code_for(feature: FeatureSpec, value, reference: FeatureDistribution) -> str:
    """Stable machine-readable reason code: the metric and where the account's value sits."""
    stem = feature.code.upper()
    if _missing(value):
        return f"{stem}_MISSING"
    if feature.kind == "categorical":
        if _unseen(value, reference):
            return f"{stem}_UNSEEN"
        return f"{stem}_{''.join(ch if ch.isalnum() else '_' for ch in str(value).upper())}"
    quantiles = reference.quantiles
    median = quantiles[len(quantiles) // 2] if quantiles is not None and len(quantiles) else value
    return f"{stem}_{'LOW' if value < median else 'HIGH'}"


def format_value(feature: FeatureSpec, value) -> str:
    if feature.kind == "categorical":
        return str(value)
    fmt = feature.format
    if fmt == "percent":
        return f"{value:.0%}"
    if fmt == "currency":
        return f"${value:,.0f}"
    if fmt == "days":
        return f"{value:,.0f} day{'' if round(value) == 1 else 's'}"
    if fmt == "hours":
        return f"{value:,.1f} h"
    if fmt in ("integer", "score"):
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def rank_phrase(value: float, reference: FeatureDistribution) -> str:
    """'lower than 88% of accounts' / 'higher than 70% of accounts', against the training base.

    Shares are strict, so a value many accounts share (0 tickets) is not 'lower than 100%'."""
    quantiles = reference.quantiles
    if quantiles is None or not len(quantiles):
        return ""
    q = np.asarray(quantiles)
    below = np.searchsorted(q, value, side="left") / len(q)
    above = 1 - np.searchsorted(q, value, side="right") / len(q)
    if above >= below:
        return f"lower than {above:.0%} of accounts"
    return f"higher than {below:.0%} of accounts"


def points_text(pts: float) -> str:
    """'-7 points', '+1 point', '-0.3 points': what a metric does to the score."""
    if abs(pts) >= 0.5:
        return f"{pts:+.0f} point{'' if round(abs(pts)) == 1 else 's'}"
    return f"{pts:+.1f} points"


def partial_note(feature: FeatureSpec, age, days_of_data) -> str:
    """'new account, 8 days' / 'before the data starts: 45 of 90 days on record' when the metric's
    window reaches back before the account opened or the data starts; '' when it is whole."""
    window = feature.window_days
    age, data = (None if _missing(x) else x for x in (age, days_of_data))
    if window is None or min((x for x in (age, data) if x is not None), default=window) >= window:
        return ""
    if age is not None and (data is None or age <= data):
        return f"new account, {age:,.0f} day{'' if age == 1 else 's'}"
    return f"before the data starts: {data:,.0f} of {window:,} days on record"


def text_for(feature: FeatureSpec, value, reference: FeatureDistribution, pts: float, partial: str = "") -> str:
    """Plain language: 'Licence utilisation 34% (lower than 88% of accounts): -7 points', with the
    `partial_note` of a window only partly covered ('Logins (30 days) 12 (new account, 8 days,
    scaled to 30 days; ...)')."""
    push = points_text(pts)
    if _missing(value):
        what = "not measured" if partial and feature.partial_window == "missing" else feature.missing_text or "none on record"
        return f"{feature.label}: {what}" + (f" ({partial})" if partial else "") + f": {push}"
    if feature.kind == "categorical":
        # the model reads a value it never saw as missing: say so rather than name it as the reason
        seen = " (new value, not seen in training: read as missing)" if _unseen(value, reference) else ""
        return f"{feature.label}: {value}{seen}: {push}"
    capped = feature.cap is not None and value >= feature.cap  # a days-since metric found nothing in its look-back
    if feature.cap is not None and partial:  # a date found is exact; nothing found in a short history is no long wait
        return f"{feature.label}: none on record ({partial}): {push}" if capped else text_for(feature, value, reference, pts)
    if partial and feature.partial_window == "scale":
        partial += f", scaled to {feature.window_days} days"
    shown = format_value(feature, value) + (" or more" if capped else "")
    notes = "; ".join(x for x in (partial, rank_phrase(value, reference)) if x)
    return f"{feature.label} {shown}" + (f" ({notes})" if notes else "") + f": {push}"


def _unseen(value, reference: FeatureDistribution) -> bool:
    return reference.categories is not None and str(value) not in reference.categories


def unseen_categories(model: HealthModel, X: pd.DataFrame) -> dict[str, dict[str, int]]:
    """Per categorical metric, the values in `X` that training never saw, with their counts."""
    found = {}
    for f in model.features:
        known = model.reference_.features[f.code].categories
        if f.kind != "categorical" or known is None:
            continue
        values = X[f.code].dropna().astype(str)
        new = values[~values.isin(list(known))].value_counts()
        if len(new):
            found[f.code] = {str(k): int(v) for k, v in new.items()}
    return found


def _missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value))


def explain(model: HealthModel, X: pd.DataFrame) -> pd.DataFrame:
    """Reason and strength columns, the baseline, every metric's points and value as JSON, per row."""
    pts, baseline = points(model, X)
    features = model.features
    # quantiles as arrays once, not per row and reason: these loops are the job's hot path
    refs = [ref.model_copy(update={"quantiles": np.asarray(ref.quantiles if ref.quantiles is not None else [])})
            for ref in (model.reference_.features[f.code] for f in features)]
    values = X[[f.code for f in features]].to_numpy(dtype=object)
    ages = X[ACCOUNT_AGE].to_numpy(dtype=object) if ACCOUNT_AGE in X else np.full(len(X), None)
    data_days = {s: X[f"{DATA_DAYS}_{s}"].to_numpy(dtype=object)
                 for f in features if (s := f.window_source) and f"{DATA_DAYS}_{s}" in X}
    matrix = pts.to_numpy()
    order = np.argsort(matrix, axis=1, kind="stable")  # most negative first
    out: dict[str, object] = {}
    for side, picks in zip(REASON_SIDES, (order[:, :REASONS], order[:, ::-1][:, :REASONS])):
        for k in range(REASONS):
            codes, texts, amounts = [], [], []
            for row, j in enumerate(picks[:, k]):
                p = matrix[row, j]
                # a metric that pushes the wrong way for this side is not a reason of that side
                if (p < 0) if side == "reason" else (p > 0):
                    f, v = features[j], values[row, j]
                    codes.append(code_for(f, v, refs[j]))
                    seen = data_days[f.window_source][row] if f.window_source in data_days else None
                    texts.append(text_for(f, v, refs[j], p, partial_note(f, ages[row], seen)))
                    amounts.append(float(p))
                else:
                    codes.append(None)
                    texts.append(None)
                    amounts.append(np.nan)
            # typed, not object: a chunk with no third reason anywhere must still write text columns
            out[f"{side}_{k + 1}_code"] = pd.array(codes, dtype="str")
            out[f"{side}_{k + 1}_text"] = pd.array(texts, dtype="str")
            out[f"{side}_{k + 1}_points"] = np.array(amounts, dtype=float)
    codes = [f.code for f in features]
    out["baseline_score"] = baseline.tolist()
    # pandas writes JSON in C: one object per row, NaN as null. Points to 10 decimals, so they add
    # up to the score; values to 15 significant digits, so a change can be attributed from them.
    out["contributions"] = pd.DataFrame(matrix, columns=codes).to_json(orient="records", lines=True).splitlines()
    plain = X[codes].astype({f.code: "float64" for f in features if f.kind == "numeric"})
    out["metric_values"] = plain.to_json(orient="records", lines=True, double_precision=15).splitlines()
    return pd.DataFrame(out, index=X.index)


def scores_with_reasons(model: HealthModel, ref: ModelRef, rows: pd.DataFrame, as_of: dt.date | None, scored_at: str,
                        previous_tiers: dict[str, str] | None = None) -> pd.DataFrame:
    """The scores-file columns (`healthscore.scores_file.SCORE_COLUMNS`, plus the account
    attributes) of a batch of rows; `previous_tiers` (account id -> its last recorded tier) keeps
    tiers stable (see `Tiers.assign_scores`)."""
    reasons = explain(model, rows)
    previous = rows["account_id"].astype(str).map(previous_tiers) if previous_tiers else None
    scores = model.score(rows, previous)
    out = pd.DataFrame({"account_id": rows["account_id"].astype(str).to_numpy()}, index=rows.index)
    # a snapshot without dates is the state of the accounts when it is scored
    out["as_of"] = as_of if as_of is not None else (rows["as_of"] if "as_of" in rows else dt.date.fromisoformat(scored_at[:10]))
    for attribute in ATTRIBUTES:  # who the account is and who owns it, for reports and CRM imports
        out[attribute] = rows[attribute].astype("string") if attribute in rows else pd.NA
    out = pd.concat([out, scores[["churn_probability", "health_score", "health_percentile", "tier", "tier_color"]], reasons], axis=1)
    out["model_name"], out["model_version"], out["model_run_id"], out["scored_at"] = ref.name, ref.version, ref.run_id, scored_at
    return out
