"""How predictive and how calibrated a churn score is: the figures published with every model."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from healthscore.scores_file import TIERS


def expected_calibration_error(y, p, bins: int = 10) -> float:
    """Mean |predicted - observed| churn rate over `bins` equal-mass bins, weighted by bin size."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    return float(sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in np.array_split(order, bins)) / len(y))


def top_decile_lift(y, p) -> float:
    """Churn rate among the riskiest 10% over the overall churn rate."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    top = np.argsort(-p, kind="stable")[: max(1, len(p) // 10)]
    return float(y[top].mean() / y.mean()) if y.mean() > 0 else float("nan")


def evaluate(y, p, tiers=None) -> dict[str, float]:
    """ROC-AUC, PR-AUC, Brier, log loss, ECE, top-decile lift, and per-tier churn rate and count."""
    y, p = np.asarray(y, dtype=float), np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    out = {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "log_loss": float(log_loss(y, p, labels=[0, 1])),
        "ece": expected_calibration_error(y, p),
        "top_decile_lift": top_decile_lift(y, p),
        "churn_rate": float(y.mean()),
        "rows": float(len(y)),
    }
    if tiers is not None:
        tiers = np.asarray(tiers)
        for tier in TIERS:
            mask = tiers == tier
            out[f"churn_rate_{tier}"] = float(y[mask].mean()) if mask.any() else float("nan")
            out[f"accounts_{tier}"] = float(mask.sum())
    return out


def comparison_table(results: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Contenders as rows, metrics as columns, in the order given."""
    return pd.DataFrame.from_dict(results, orient="index")


def calibration_in_the_large(y, p) -> dict[str, float]:
    """Observed vs mean predicted churn, and the z-score of their gap (binomial, the rows
    independent): |z| > 2 says the level of the probabilities has moved."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    spread = float(np.sqrt(np.sum(p * (1 - p))))
    return {"observed": float(y.mean()), "predicted": float(p.mean()), "rows": float(len(y)),
            "z": float((y.sum() - p.sum()) / spread) if spread > 0 else float("nan")}


def paired_auc_difference(y, p_new, p_old, resamples: int = 1000, seed: int = 7) -> dict[str, float]:
    """ROC-AUC of `p_new` minus that of `p_old` on the same rows, with a 95% paired bootstrap
    interval (rows resampled with replacement, both scores on the same resample)."""
    y = np.asarray(y, dtype=int)
    weights = np.random.default_rng(seed).multinomial(len(y), np.full(len(y), 1 / len(y)), size=resamples)
    diffs = _weighted_auc(y, np.asarray(p_new, float), weights) - _weighted_auc(y, np.asarray(p_old, float), weights)
    low, high = np.nanquantile(diffs, [0.025, 0.975])
    return {"difference": float(roc_auc_score(y, p_new) - roc_auc_score(y, p_old)), "low": float(low), "high": float(high),
            "resamples": float(resamples)}


def _weighted_auc(y: np.ndarray, p: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of every row of `weights` (counts per row of y, p) at once, ties counted half."""
    order = np.argsort(p, kind="stable")
    p, y, weights = p[order], y[order], weights[:, order]
    starts = np.flatnonzero(np.r_[True, np.diff(p) != 0])
    pos = np.add.reduceat(weights * y, starts, axis=1).astype(float)
    neg = np.add.reduceat(weights * (1 - y), starts, axis=1).astype(float)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))
