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
