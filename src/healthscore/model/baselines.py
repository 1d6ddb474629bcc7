"""What the learned model must beat: a logistic regression, and the hand-weighted scorecard
CS teams build today (each metric a 0-100 percentile in its good direction, equal weights)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from healthscore.dataset import FeatureSpec
from healthscore.model.calibration import Calibrator


class LogisticBaseline:
    """Standardised numeric metrics (median-imputed, with missing flags) + one-hot categoricals."""

    def __init__(self, features: list[FeatureSpec]):
        self.features = features

    def fit(self, X: pd.DataFrame, y) -> LogisticBaseline:
        self.numeric_ = [f.code for f in self.features if f.kind == "numeric"]
        self.categorical_ = [f.code for f in self.features if f.kind == "categorical"]
        prep = ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True), StandardScaler()), self.numeric_),
            ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="(missing)"), OneHotEncoder(handle_unknown="ignore")), self.categorical_),
        ])
        self.pipeline_ = make_pipeline(prep, LogisticRegression(C=1.0, max_iter=5000)).fit(self._frame(X), np.asarray(y, dtype=int))
        return self

    def _frame(self, X: pd.DataFrame) -> pd.DataFrame:
        num = X[self.numeric_].apply(pd.to_numeric, errors="coerce").astype(float)
        cat = X[self.categorical_].astype(object).where(X[self.categorical_].notna(), "(missing)")
        return pd.concat([num, cat], axis=1)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return self.pipeline_.predict_proba(self._frame(X))


class ScorecardBaseline:
    """Equal-weight average of per-metric percentile scores (missing = 50, the middle).

    A scorecard gives points, not probabilities; for Brier, log loss and calibration it gets the
    same fair chance as the model: a sigmoid fitted on the validation slice.
    """

    def __init__(self, features: list[FeatureSpec]):
        self.features = features

    def fit(self, X: pd.DataFrame, y, X_valid: pd.DataFrame, y_valid) -> ScorecardBaseline:
        self.directions_ = {f.code: f.good_direction for f in self.features if f.kind == "numeric" and f.good_direction != "none"}
        self.reference_ = {c: np.sort(pd.to_numeric(X[c], errors="coerce").dropna().to_numpy(float)) for c in self.directions_}
        risk = 100 - self.points(X_valid)
        self.calibrator_ = Calibrator.fit((risk - 50) / 10, y_valid, "sigmoid")
        return self

    def points(self, X: pd.DataFrame) -> np.ndarray:
        """The 0-100 health points a hand-built scorecard would show."""
        scores = []
        for code, direction in self.directions_.items():
            ref, values = self.reference_[code], pd.to_numeric(X[code], errors="coerce").to_numpy(float)
            if not len(ref):
                continue
            rank = (np.searchsorted(ref, values, side="left") + np.searchsorted(ref, values, side="right")) / (2 * len(ref))
            pct = 100 * (rank if direction == "higher" else 1 - rank)
            scores.append(np.where(np.isnan(values), 50.0, pct))
        # A snapshot table states no good direction for any column: a scorecard then has nothing
        # to weigh and gives every account the middle.
        return np.mean(scores, axis=0) if scores else np.full(len(X), 50.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.calibrator_.transform((100 - self.points(X) - 50) / 10)
        return np.column_stack([1 - p, p])
