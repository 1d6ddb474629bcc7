"""Has the customer base moved away from what the model learned on? Population stability index.

PSI = sum over bins of (actual - expected) x ln(actual / expected). CS and credit-risk practice
reads it as: below 0.1 stable, 0.1-0.25 watch, above 0.25 act (retrain or investigate the data).
Bins are the reference population's deciles (frozen in the model), with missing values as a bin
of their own, so a feed that silently stops delivering a metric shows up too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.model.estimator import FeatureDistribution, HealthModel

WATCH, ACT = 0.1, 0.25
SCORE_KEY = "__churn_probability__"  # the score's bins among the metrics' in `counts`
_EPS = 1e-4  # an empty bin would make the index infinite


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    e = np.clip(np.asarray(expected, float), _EPS, None)
    a = np.clip(np.asarray(actual, float), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


class _Bins:
    """Counts of one distribution over the reference's bins, added up chunk by chunk; the last
    bin holds missing values (and, for categories, a bin before it values unseen in training)."""

    def __init__(self, reference: FeatureDistribution):
        missing = reference.missing_share
        self.categories = list(reference.categories or {})
        if reference.categories is not None:
            self.expected = np.array([reference.categories[c] * (1 - missing) for c in self.categories] + [0.0, missing])
        else:
            quantiles = np.asarray(reference.quantiles)
            self.edges = np.unique(quantiles[::10])[1:-1]  # inner decile edges; ties (many zeros) merge bins
            inner = np.bincount(np.searchsorted(self.edges, quantiles, side="right"), minlength=len(self.edges) + 1)
            self.expected = np.r_[inner / len(quantiles) * (1 - missing), missing]
        self.counts = np.zeros(len(self.expected))

    def add(self, values: pd.Series | np.ndarray) -> None:
        if self.categories:
            text = pd.Series(values).astype("string")
            codes = pd.Categorical(text, categories=self.categories).codes  # -1: unseen or missing
            found = np.bincount(codes[codes >= 0], minlength=len(self.categories))
            self.counts += np.r_[found, int((text.notna().to_numpy() & (codes < 0)).sum()), int(text.isna().sum())]
        else:
            numeric = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(float)
            present = numeric[~np.isnan(numeric)]
            self.counts += np.r_[np.bincount(np.searchsorted(self.edges, present, side="right"), minlength=len(self.edges) + 1),
                                 len(numeric) - len(present)]

    def psi(self) -> float:
        return psi(self.expected, self.counts / max(self.counts.sum(), 1))


class DriftCheck:
    """PSI of every metric and of the churn probability against training, fed chunk by chunk."""

    def __init__(self, model: HealthModel):
        self.features = [f.code for f in model.features]
        self.bins = {code: _Bins(model.reference_.features[code]) for code in self.features}
        q = np.asarray(model.reference_.probability_quantiles)
        self.score = _Bins(FeatureDistribution(quantiles=q[:: len(q) // 100].tolist(), missing_share=0.0))

    def add(self, rows: pd.DataFrame, churn_probability: np.ndarray) -> None:
        for code in self.features:
            self.bins[code].add(rows[code])
        self.score.add(churn_probability)

    def counts(self) -> dict[str, list[float]]:
        """The counts per bin so far, as plain data: partitions scored apart (Spark) add theirs up with `merge`."""
        return {code: bins.counts.tolist() for code, bins in ({**self.bins, SCORE_KEY: self.score}).items()}

    def merge(self, counts: dict[str, list[float]]) -> None:
        for code, bins in ({**self.bins, SCORE_KEY: self.score}).items():
            bins.counts += np.asarray(counts[code])

    def report(self) -> dict:
        metrics = {code: self.bins[code].psi() for code in self.features}
        return {
            "score_psi": self.score.psi(),
            "metrics": metrics,
            "watch": sorted((c for c, v in metrics.items() if WATCH < v <= ACT), key=lambda c: -metrics[c]),
            "act": sorted((c for c, v in metrics.items() if v > ACT), key=lambda c: -metrics[c]),
        }


def drift_report(model: HealthModel, frame: pd.DataFrame, churn_probability: np.ndarray) -> dict:
    """PSI of every metric and of the churn-probability distribution against training."""
    check = DriftCheck(model)
    check.add(frame, churn_probability)
    return check.report()
