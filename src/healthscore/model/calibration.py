"""Probability calibration stored as plain JSON numbers (no pickled estimators).

Isotonic calibration is kept strictly increasing by interpolating between the centres of the
isotonic blocks, so it re-maps probabilities without creating ties that would cost ranking
quality (ROC-AUC); sigmoid (Platt) calibration works on the model's log-odds.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

# Isotonic needs enough data per block to be better than a two-parameter sigmoid.
ISOTONIC_MIN_ROWS = 1000
ISOTONIC_MIN_POSITIVES = 100


class Calibrator(BaseModel):
    method: Literal["isotonic", "sigmoid"]
    x: list[float] = []  # isotonic: raw probabilities at block centres
    y: list[float] = []  # isotonic: calibrated probabilities there
    a: float = 1.0  # sigmoid: p = 1 / (1 + exp(-(a * log_odds + b)))
    b: float = 0.0

    @classmethod
    def fit(cls, log_odds: np.ndarray, y: np.ndarray, method: str = "auto") -> Calibrator:
        y = np.asarray(y, dtype=float)
        if method == "auto":
            enough = len(y) >= ISOTONIC_MIN_ROWS and y.sum() >= ISOTONIC_MIN_POSITIVES
            method = "isotonic" if enough else "sigmoid"
        if method == "sigmoid":
            lr = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(log_odds).reshape(-1, 1), y)
            return cls(method="sigmoid", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))
        raw = _sigmoid(np.asarray(log_odds))
        order = np.argsort(raw, kind="stable")
        fitted = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit_transform(raw[order], y[order])
        # one point per block of equal fitted values: its mean raw probability and its value
        starts = np.flatnonzero(np.r_[True, np.diff(fitted) != 0])
        centres = np.add.reduceat(raw[order], starts) / np.diff(np.r_[starts, len(raw)])
        return cls(method="isotonic", x=centres.tolist(), y=fitted[starts].tolist())

    def transform(self, log_odds: np.ndarray) -> np.ndarray:
        log_odds = np.asarray(log_odds, dtype=float)
        if self.method == "sigmoid":
            return _sigmoid(self.a * log_odds + self.b)
        return np.interp(_sigmoid(log_odds), self.x, self.y)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))
