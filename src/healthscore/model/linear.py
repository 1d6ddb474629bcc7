"""The logistic-regression family, shippable as a HealthModel: plain JSON coefficients, exact
per-metric contributions (linear SHAP on the log-odds) and monotone directions.

Each metric becomes one or more terms: a numeric metric its (log1p for non-negative skewed
counts and amounts) standardised value, median-imputed, plus a missing flag when training had
gaps; a categorical metric one indicator per training level (unseen or missing: none of them).
A metric's contribution is the sum of its terms' coef x (term - training mean), so the
contributions and the intercept at the training means add up to the log-odds exactly.

A metric with a good direction may only move risk that way: its coefficient is bounded to that
sign in the fit itself (L2-penalised log loss, minimised with L-BFGS-B under the bounds); a
metric the data would have pushed the wrong way ends at zero and is reported as held.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy.optimize import minimize

from healthscore.dataset import FeatureSpec

SKEW_FOR_LOG = 1.0  # a non-negative metric this skewed is read on log1p (counts, amounts)


class Term(BaseModel):
    feature: str
    kind: Literal["value", "missing", "level"]
    level: str = ""
    log: bool = False
    impute: float = 0.0  # value: the training median on the transformed scale
    center: float = 0.0
    scale: float = 1.0
    sign: int = 0  # value: +1 may only raise risk, -1 only lower it, 0 free
    mean: float = 0.0  # the term's training mean: the baseline of its contribution
    coef: float = 0.0


class LinearModel(BaseModel):
    terms: list[Term]
    intercept: float = 0.0
    C: float = 1.0
    held: list[str] = []  # metrics the data pushed against their good direction: held at zero

    @classmethod
    def fit(cls, features: list[FeatureSpec], X: pd.DataFrame, y, signs: dict[str, int], C: float = 1.0) -> LinearModel:
        """Minimise sum of log losses + |coef|^2 / (2 C) (scikit-learn's convention), each signed
        term's coefficient bounded to its sign."""
        terms = [t for f in features for t in _terms(f, X[f.code], signs.get(f.code, 0))]
        model = cls(terms=terms, C=C)
        D = model.design(X)
        for t, column in zip(terms, D.T):
            t.mean = float(column.mean())
        y = np.asarray(y, dtype=float)
        n = len(y)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            z = D @ w[:-1] + w[-1]
            residual = 1 / (1 + np.exp(-z)) - y
            value = (np.logaddexp(0, z) - y * z).sum() + w[:-1] @ w[:-1] / (2 * C)
            return value / n, np.r_[D.T @ residual + w[:-1] / C, residual.sum()] / n

        bounds = [(0, None) if t.sign > 0 else (None, 0) if t.sign < 0 else (None, None) for t in terms] + [(None, None)]
        rate = min(max(y.mean(), 1e-6), 1 - 1e-6)
        start = np.r_[np.zeros(len(terms)), np.log(rate / (1 - rate))]
        w = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 5000}).x
        for t, c in zip(terms, w[:-1]):
            t.coef = float(c)
        model.intercept = float(w[-1])
        # a signed coefficient at its bound with the gradient pushing past it: the data wanted the other sign
        _, grad = loss(w)
        model.held = sorted({t.feature for t, c, g in zip(terms, w[:-1], grad[:-1]) if t.sign and c == 0 and t.sign * g > 0})
        return model

    def design(self, X: pd.DataFrame) -> np.ndarray:
        columns = []
        for t in self.terms:
            if t.kind == "level":
                columns.append((X[t.feature].astype("string") == t.level).fillna(False).to_numpy(float))
                continue
            values = pd.to_numeric(X[t.feature], errors="coerce").to_numpy(float)
            if t.kind == "missing":
                columns.append(np.isnan(values).astype(float))
                continue
            values = np.log1p(np.clip(values, 0, None)) if t.log else values
            columns.append((np.where(np.isnan(values), t.impute, values) - t.center) / t.scale)
        return np.column_stack(columns) if columns else np.zeros((len(X), 0))

    def log_odds(self, X: pd.DataFrame) -> np.ndarray:
        return self.intercept + self.design(X) @ np.array([t.coef for t in self.terms])

    def contributions(self, X: pd.DataFrame, features: list[str]) -> np.ndarray:
        """Linear SHAP: one column per metric in `features` order, the last the expected value."""
        coef, mean = np.array([t.coef for t in self.terms]), np.array([t.mean for t in self.terms])
        per_term = (self.design(X) - mean) * coef
        index = {code: i for i, code in enumerate(features)}
        out = np.zeros((len(X), len(features) + 1))
        for j, t in enumerate(self.terms):
            out[:, index[t.feature]] += per_term[:, j]
        out[:, -1] = self.intercept + float(coef @ mean)
        return out


def _terms(f: FeatureSpec, values: pd.Series, sign: int) -> list[Term]:
    if f.kind == "categorical":
        return [Term(feature=f.code, kind="level", level=v) for v in sorted(values.dropna().astype(str).unique())]
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)
    present = x[~np.isnan(x)]
    if not len(present):
        return []
    log = bool(present.min() >= 0 and pd.Series(present).skew() > SKEW_FOR_LOG)
    t = np.log1p(present) if log else present
    scale = float(t.std()) or 1.0
    value = Term(feature=f.code, kind="value", log=log, impute=float(np.median(t)), center=float(t.mean()), scale=scale, sign=sign)
    return [value] + ([Term(feature=f.code, kind="missing")] if len(present) < len(x) else [])
