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
    return describe(feature, reference, np.array([value], dtype=object))[0][0]


def text_for(feature: FeatureSpec, value, reference: FeatureDistribution, pts: float, partial: str = "") -> str:
    """Plain language: 'Licence utilisation 34% (lower than 88% of accounts): -7 points', with the
    `partial_note` of a window only partly covered ('Logins (30 days) 12 (new account, 8 days,
    scaled to 30 days; ...)')."""
    one = np.array([value], dtype=object)
    return f"{describe(feature, reference, one, np.array([partial], dtype=object))[1][0]}: {points_text(pts)}"


def partial_note(feature: FeatureSpec, age, days_of_data) -> str:
    """'new account, 8 days' / 'before the data starts: 45 of 90 days on record' when the metric's
    window reaches back before the account opened or the data starts; '' when it is whole."""
    window = feature.window_days
    age, data = (None if pd.isna(x) else x for x in (age, days_of_data))
    if window is None or min((x for x in (age, data) if x is not None), default=window) >= window:
        return ""
    if age is not None and (data is None or age <= data):
        return f"new account, {age:,.0f} day{'' if age == 1 else 's'}"
    return f"before the data starts: {data:,.0f} of {window:,} days on record"


def describe(feature: FeatureSpec, reference: FeatureDistribution, values: np.ndarray,
             partial: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reason codes and texts (without the points) of one metric's values, a whole array at a time
    (the job writes six of each per account), each with its `partial_note` ('' or None: none)."""
    stem, n = feature.code.upper(), len(values)
    partial = np.full(n, "", dtype=object) if partial is None else np.where(pd.isna(partial), "", partial).astype(object)
    codes, texts = np.full(n, f"{stem}_MISSING", dtype=object), np.full(n, "", dtype=object)
    missing = pd.isna(values)
    unmeasured = "not measured" if feature.partial_window == "missing" else feature.missing_text or "none on record"
    texts[missing] = [f"{feature.label}: {unmeasured if note else feature.missing_text or 'none on record'}" + (f" ({note})" if note else "")
                      for note in partial[missing]]
    present = values[~missing]
    if feature.kind == "categorical":
        text = pd.Series(present, dtype=object).astype(str)
        # the model reads a value it never saw as missing: say so rather than name it as the reason
        unseen = ~text.isin(list(reference.categories)).to_numpy() if reference.categories is not None else np.zeros(len(text), bool)
        tokens = text.str.upper().str.replace(r"\W", "_", regex=True).to_numpy()
        codes[~missing] = np.where(unseen, f"{stem}_UNSEEN", f"{stem}_" + tokens.astype(object))
        texts[~missing] = [f"{feature.label}: {v}{' (new value, not seen in training: read as missing)' if u else ''}"
                           for v, u in zip(text, unseen)]
        return codes, texts
    v = present.astype(float)
    q = np.asarray(reference.quantiles if reference.quantiles is not None else [], dtype=float)
    median = q[len(q) // 2] if len(q) else np.inf
    codes[~missing] = np.where(v < median, f"{stem}_LOW", f"{stem}_HIGH") if len(q) else f"{stem}_HIGH"
    shown = format_values(feature, v)
    cap, scaled = feature.cap, f", scaled to {feature.window_days} days" if feature.partial_window == "scale" else ""
    texts[~missing] = [_numeric_text(feature.label, s, r, note, cap is not None and x >= cap, cap is not None, scaled)
                       for s, r, note, x in zip(shown, rank_phrases(v, q), partial[~missing], v.tolist())]
    return codes, texts


def _numeric_text(label: str, shown: str, rank: str, note: str, capped: bool, has_cap: bool, scaled: str) -> str:
    if has_cap and note:  # a date found is exact; nothing found in a short history is no long wait
        if capped:
            return f"{label}: none on record ({note})"
        note = ""
    notes = "; ".join(x for x in ((note + scaled) if note else "", rank) if x)
    return f"{label} {shown}{' or more' if capped else ''}" + (f" ({notes})" if notes else "")


def format_value(feature: FeatureSpec, value) -> str:
    if feature.kind == "categorical":
        return str(value)
    return format_values(feature, np.array([value], dtype=float))[0]


def format_values(feature: FeatureSpec, values: np.ndarray) -> list[str]:
    fmt, values = feature.format, values.tolist()
    if fmt == "percent":
        return [f"{v:.0%}" for v in values]
    if fmt == "currency":
        return [f"${v:,.0f}" for v in values]
    if fmt == "days":
        return [f"{v:,.0f} day{'' if round(v) == 1 else 's'}" for v in values]
    if fmt == "hours":
        return [f"{v:,.1f} h" for v in values]
    if fmt in ("integer", "score"):
        return [f"{v:,.0f}" for v in values]
    return [f"{v:,.2f}".rstrip("0").rstrip(".") for v in values]


def rank_phrase(value: float, reference: FeatureDistribution) -> str:
    """'lower than 88% of accounts' / 'higher than 70% of accounts', against the training base."""
    return rank_phrases(np.array([value], dtype=float), np.asarray(reference.quantiles or [], dtype=float))[0]


def rank_phrases(values: np.ndarray, quantiles: np.ndarray) -> list[str]:
    """Shares are strict, so a value many accounts share (0 tickets) is not 'lower than 100%'."""
    if not len(quantiles):
        return [""] * len(values)
    below = (np.searchsorted(quantiles, values, side="left") / len(quantiles)).tolist()
    above = (1 - np.searchsorted(quantiles, values, side="right") / len(quantiles)).tolist()
    return [f"lower than {a:.0%} of accounts" if a >= b else f"higher than {b:.0%} of accounts" for a, b in zip(above, below)]


def points_text(pts: float) -> str:
    """'-7 points', '+1 point', '-0.3 points': what a metric does to the score."""
    return points_texts(np.array([pts]))[0]


def points_texts(points: np.ndarray) -> np.ndarray:
    out = np.empty(len(points), dtype=object)
    whole = np.abs(points) >= 0.5
    # numpy rounds half to even as the format does; plain floats format faster than numpy's
    out[whole] = [f"{p:+.0f} point" if p in (1.0, -1.0) else f"{p:+.0f} points" for p in np.round(points[whole]).tolist()]
    out[~whole] = [f"{p:+.1f} points" for p in points[~whole].tolist()]
    return out


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


def explain(model: HealthModel, X: pd.DataFrame) -> pd.DataFrame:
    """Reason and strength columns, the baseline, every metric's points and value as JSON, per row."""
    pts, baseline = points(model, X)
    features = model.features
    refs = [model.reference_.features[f.code] for f in features]
    values = X[[f.code for f in features]].to_numpy(dtype=object)
    ages = X[ACCOUNT_AGE].to_numpy(dtype=object) if ACCOUNT_AGE in X else np.full(len(X), None)
    data_days = {s: X[f"{DATA_DAYS}_{s}"].to_numpy(dtype=object)
                 for f in features if (s := f.window_source) and f"{DATA_DAYS}_{s}" in X}
    matrix = pts.to_numpy()
    rows = np.arange(len(matrix))
    order = np.argsort(matrix, axis=1, kind="stable")  # most negative first
    out: dict[str, object] = {}
    for side, picks in zip(REASON_SIDES, (order[:, :REASONS], order[:, ::-1][:, :REASONS])):
        for k in range(REASONS):
            picked = picks[:, min(k, matrix.shape[1] - 1)]
            amount = matrix[rows, picked]
            # a metric that pushes the wrong way for this side is not a reason of that side; a model with
            # fewer metrics than reasons leaves the rest empty
            named = (amount < 0 if side == "reason" else amount > 0) & (k < matrix.shape[1])
            codes, texts = np.full(len(rows), None, dtype=object), np.full(len(rows), None, dtype=object)
            for j in np.unique(picked[named]):
                at = np.flatnonzero(named & (picked == j))
                f, seen = features[j], data_days.get(features[j].window_source)
                notes = None if f.window_days is None else np.array(
                    [partial_note(f, ages[i], None if seen is None else seen[i]) for i in at], dtype=object)
                codes[at], texts[at] = describe(f, refs[j], values[at, j], notes)
            texts[named] = texts[named] + ": " + points_texts(amount[named])
            out[f"{side}_{k + 1}_code"], out[f"{side}_{k + 1}_text"] = codes, texts
            out[f"{side}_{k + 1}_points"] = np.where(named, amount, np.nan)
    codes = [f.code for f in features]
    out["baseline_score"] = baseline.tolist()
    # pandas writes JSON in C: one object per row, NaN as null. Points to 10 decimals, so they add
    # up to the score; values to 15 significant digits, so a change can be attributed from them.
    out["contributions"] = json_rows(pd.DataFrame(matrix, columns=codes), 10)
    out["metric_values"] = json_rows(X[codes].astype({f.code: "float64" for f in features if f.kind == "numeric"}), 15)
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


def json_rows(frame: pd.DataFrame, precision: int) -> list[str]:
    """One JSON object per row, written by pandas in C. The rows are cut from one array of
    records: a record ends with '},{"', which no JSON string can hold unescaped (much faster
    than pandas' own line splitting, which runs in Python)."""
    if frame.empty:
        return ["{}"] * len(frame)
    text = frame.to_json(orient="records", double_precision=precision)
    parts = text[2:-2].split('},{"')
    return ["{" + parts[0] + "}"] + ['{"' + p + "}" for p in parts[1:]]
