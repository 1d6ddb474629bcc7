"""Has the customer base moved away from what the model learned on? Population stability index.

PSI = sum over bins of (actual - expected) x ln(actual / expected). CS and credit-risk practice
reads it as: below 0.1 stable, 0.1-0.25 watch, above 0.25 act (retrain or investigate the data).
Bins are the reference population's deciles (frozen in the model), with missing values as a bin
of their own, so a feed that silently stops delivering a metric shows up too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.model.estimator import HealthModel

WATCH, ACT = 0.1, 0.25
_EPS = 1e-4  # an empty bin would make the index infinite


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(np.asarray(expected, float), _EPS, None)
    a = np.clip(np.asarray(actual, float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_shares(reference: dict, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    quantiles = np.asarray(reference["quantiles"])
    edges = np.unique(quantiles[::10])[1:-1]  # inner decile edges; ties (many zeros) merge bins
    missing_e = reference["missing_share"]
    expected = np.bincount(np.searchsorted(edges, quantiles, side="right"), minlength=len(edges) + 1) / len(quantiles)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(float)
    present = numeric[~np.isnan(numeric)]
    actual = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1) / max(len(numeric), 1)
    return np.r_[expected * (1 - missing_e), missing_e], np.r_[actual, np.isnan(numeric).mean() if len(numeric) else 0.0]


def _categorical_shares(reference: dict, values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    known = list(reference["categories"])
    missing_e = reference["missing_share"]
    expected = [reference["categories"][c] * (1 - missing_e) for c in known] + [0.0, missing_e]
    text = values.astype("string")
    n = max(len(values), 1)
    actual = [float((text == c).sum()) / n for c in known]
    unseen = float((text.notna() & ~text.isin(known)).sum()) / n
    return np.array(expected), np.array(actual + [unseen, float(text.isna().sum()) / n])


def drift_report(model: HealthModel, frame: pd.DataFrame, churn_probability: np.ndarray) -> dict:
    """PSI of every metric and of the churn-probability distribution against training."""
    metrics = {}
    for f in model.features:
        ref = model.reference_["features"][f.code]
        shares = _categorical_shares if f.kind == "categorical" else _numeric_shares
        metrics[f.code] = psi(*shares(ref, frame[f.code]))
    q = np.asarray(model.reference_["probability_quantiles"])
    score_ref = {"quantiles": q[:: len(q) // 100].tolist(), "missing_share": 0.0}
    score = psi(*_numeric_shares(score_ref, pd.Series(churn_probability)))
    return {
        "score_psi": score,
        "metrics": metrics,
        "watch": sorted((c for c, v in metrics.items() if WATCH < v <= ACT), key=lambda c: -metrics[c]),
        "act": sorted((c for c, v in metrics.items() if v > ACT), key=lambda c: -metrics[c]),
    }
