"""Probability calibration stored as plain JSON numbers (no pickled estimators).

The calibrator is fitted on out-of-fold log-odds (every development row, across all its dates)
and its method is the one with the lowest cross-validated log loss among: `sigmoid` (Platt, on
the log-odds), `isotonic` (kept strictly increasing by interpolating between the centres of the
isotonic blocks, so it costs no ranking quality) and `none` (the model's own probability).

Bounded: no calibrated probability is ever exactly 0 or 1. With n calibration rows, the most
extreme claim the data supports is the one it would make had none of them churned (or all):
the Jeffreys posterior mean 0.5 / (n + 1). Every method is clipped to
[0.5 / (n + 1), 1 - 0.5 / (n + 1)]; isotonic end blocks, which would otherwise say 0 or 1 from a
few dozen rows, take the Jeffreys estimate of their own rows, (k + 0.5) / (m + 1).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import StratifiedKFold

METHODS = ("sigmoid", "isotonic", "none")
CV_FOLDS = 5


class Calibrator(BaseModel):
    method: Literal["isotonic", "sigmoid", "none"]
    x: list[float] = []  # isotonic: raw probabilities at block centres
    y: list[float] = []  # isotonic: calibrated probabilities there
    a: float = 1.0  # sigmoid: p = 1 / (1 + exp(-(a * log_odds + b)))
    b: float = 0.0
    low: float = 0.0  # bounds: 0.5 / (rows + 1) and its mirror
    high: float = 1.0
    rows: int = 0
    cv_log_loss: dict[str, float] = {}  # method -> cross-validated log loss, when chosen by "auto"

    @classmethod
    def fit(cls, log_odds: np.ndarray, y: np.ndarray, method: str = "auto", seed: int = 7) -> Calibrator:
        log_odds, y = np.asarray(log_odds, dtype=float), np.asarray(y, dtype=float)
        if method != "auto":
            return cls._fit(log_odds, y, method)
        scores = cross_validated_log_loss(log_odds, y, seed)
        best = min(scores, key=scores.get)
        return cls._fit(log_odds, y, best).model_copy(update={"cv_log_loss": scores})

    @classmethod
    def _fit(cls, log_odds: np.ndarray, y: np.ndarray, method: str) -> Calibrator:
        n = len(y)
        bounds = {"low": 0.5 / (n + 1), "high": 1 - 0.5 / (n + 1), "rows": n}
        if method == "none":
            return cls(method="none", **bounds)
        if method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(log_odds.reshape(-1, 1), y)
            return cls(method="sigmoid", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]), **bounds)
        raw = _sigmoid(log_odds)
        order = np.argsort(raw, kind="stable")
        fitted = IsotonicRegression(out_of_bounds="clip").fit_transform(raw[order], y[order])
        # one point per block of equal fitted values: its mean raw probability and its value
        starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
        sizes = np.diff(np.r_[starts, n])
        centres = np.add.reduceat(raw[order], starts) / sizes
        values = fitted[starts].copy()
        jeffreys = (values * sizes + 0.5) / (sizes + 1)  # end blocks only, never past their neighbour
        values[0] = min(jeffreys[0], values[1]) if len(values) > 1 else jeffreys[0]
        values[-1] = max(jeffreys[-1], values[-2]) if len(values) > 1 else values[0]
        return cls(method="isotonic", x=centres.tolist(), y=values.tolist(), **bounds)

    def transform(self, log_odds: np.ndarray) -> np.ndarray:
        log_odds = np.asarray(log_odds, dtype=float)
        if self.method == "sigmoid":
            p = _sigmoid(self.a * log_odds + self.b)
        elif self.method == "isotonic":
            p = np.interp(_sigmoid(log_odds), self.x, self.y)
        else:
            p = _sigmoid(log_odds)
        return np.clip(p, self.low, self.high)


def cross_validated_log_loss(log_odds: np.ndarray, y: np.ndarray, seed: int = 7) -> dict[str, float]:
    """Each method's log loss on held-out folds of the calibration rows (fitted on the others)."""
    folds = StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)
    p = {m: np.empty(len(y)) for m in METHODS}
    for fit_idx, held in folds.split(log_odds.reshape(-1, 1), y):
        for m in METHODS:
            p[m][held] = Calibrator._fit(log_odds[fit_idx], y[fit_idx], m).transform(log_odds[held])
    return {m: float(log_loss(y, p[m], labels=[0, 1])) for m in METHODS}


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
