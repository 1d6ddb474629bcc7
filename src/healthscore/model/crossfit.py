"""Cross-fitting: every development row gets a prediction from a model that never saw it.

Folds are stratified by account for a dateless table, and contiguous blocks of as_of dates for
dated data, with the purge gap on both sides of a block: a training row's label horizon must
close before the block starts, and a row after the block must start once the block's horizon has
closed (otherwise the two would share a churn event). The out-of-fold log-odds choose the
family and capacity (log loss), the number of boosting rounds (each fold early-stops on its own
held-out block; the refit uses their mean) and fit the calibrator on every development row.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from healthscore.dataset import DatasetSpec, FeatureSpec
from healthscore.errors import SplitError
from healthscore.model.calibration import Calibrator
from healthscore.model.estimator import HealthModel
from healthscore.settings import ModelParams, TierPolicy

Fold = tuple[np.ndarray, np.ndarray]  # positions of (fit rows, held-out rows)


@dataclass(frozen=True)
class Contender:
    """One family at one capacity, tried on the same folds."""

    name: str
    family: str
    params: ModelParams

    def model(self, features: list[FeatureSpec], tiers: TierPolicy | None = None, rounds: int | None = None) -> HealthModel:
        params = self.params if rounds is None else self.params.model_copy(update={"max_rounds": max(1, rounds)})
        return HealthModel(features, params, tiers, self.family)


@dataclass
class CrossFit:
    contender: Contender
    log_odds: np.ndarray = field(repr=False)  # out of fold, one per development row
    rounds: int  # mean best iteration over the folds (0: logistic)

    def summary(self, y) -> dict[str, float | str]:
        p = 1 / (1 + np.exp(-self.log_odds))
        return {"contender": self.contender.name, "family": self.contender.family,
                "oof_log_loss": float(log_loss(y, np.clip(p, 1e-15, 1 - 1e-15), labels=[0, 1])),
                "oof_roc_auc": float(roc_auc_score(y, p)), "rounds": self.rounds}


def contenders(params: ModelParams) -> list[Contender]:
    """The configured LightGBM and, with `search`, a smaller, regularised one, a larger one and a
    regularised logistic regression."""
    configured = Contender(f"lightgbm_{params.num_leaves}_leaves", "lightgbm", params)
    if not params.search:
        return [configured]
    small = params.model_copy(update={"num_leaves": 4, "min_data_in_leaf": 2 * params.min_data_in_leaf,
                                      "lambda_l2": 2 * params.lambda_l2})
    large = params.model_copy(update={"num_leaves": 2 * params.num_leaves + 1, "min_data_in_leaf": max(5, params.min_data_in_leaf // 2),
                                      "lambda_l2": params.lambda_l2 / 5})
    return [Contender("lightgbm_4_leaves", "lightgbm", small), configured,
            Contender(f"lightgbm_{large.num_leaves}_leaves", "lightgbm", large), Contender("logistic", "logistic", params)]


def make_folds(frame: pd.DataFrame, spec: DatasetSpec, k: int, gap: dt.timedelta, seed: int, dated: bool) -> list[Fold]:
    """`k` folds over `frame`'s rows (positions): date blocks with the purge gap, or stratified by
    account. A short history whose purge would leave a block nothing to fit on gets fewer blocks."""
    y = frame[spec.label_column].astype(int).to_numpy()
    if not dated:
        folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
        return list(folds.split(np.zeros(len(y)), y, groups=frame[spec.id_column]))
    as_of = frame[spec.as_of_column].to_numpy()
    dates = sorted(set(as_of))
    for blocks in range(min(k, len(dates)), 1, -1):
        folds = [_date_fold(as_of, block, gap) for block in np.array_split(np.array(dates, dtype=object), blocks)]
        if all(len(fit) for fit, _ in folds):
            return folds
    raise SplitError(
        f"{len(dates)} development as_of dates ({dates[0]} .. {dates[-1]}) are too few to cross-fit with a {gap.days}-day "
        "purge gap: every block of dates would have no row whose label horizon is apart from it; add history, lower "
        "model.split.test_dates or set model.split.purge: false"
    )


def _date_fold(as_of: np.ndarray, block: np.ndarray, gap: dt.timedelta) -> Fold:
    """Hold out `block`; fit on rows whose label horizon closes before it, or that start once its own has closed."""
    first, last = block[0], block[-1]
    fit = np.array([d + gap <= first and d < first or d >= last + gap and d > last for d in as_of])
    return np.flatnonzero(fit), np.flatnonzero(np.isin(as_of, block))


def cross_fit(contender: Contender, features: list[FeatureSpec], X: pd.DataFrame, y: np.ndarray, folds: list[Fold],
              rounds: int | None = None) -> CrossFit:
    """Out-of-fold log-odds of `contender`; a LightGBM fold early-stops on its held-out rows,
    unless `rounds` fixes them."""
    oof = np.empty(len(X))  # every row is held out by exactly one fold
    found = []
    for fit, held in folds:
        model = contender.model(features, rounds=rounds)
        if rounds is None:
            model.fit_scorer(X.iloc[fit], y[fit], X.iloc[held], y[held])
        else:
            model.fit_scorer(X.iloc[fit], y[fit])
        oof[held] = model.log_odds(X.iloc[held])
        found.append(model.best_iteration_)
    return CrossFit(contender, oof, int(round(np.mean(found))))


def fit_crossfitted(contender: Contender, features: list[FeatureSpec], tiers: TierPolicy, X: pd.DataFrame, y: np.ndarray,
                    folds: list[Fold], fitted: CrossFit | None = None, rounds: int | None = None) -> tuple[HealthModel, CrossFit]:
    """The model refitted on every row of `X` with the folds' mean rounds, calibrated on the
    out-of-fold log-odds (`fitted`, if the caller has them already; `rounds` fixes the rounds)."""
    fitted = fitted or cross_fit(contender, features, X, y, folds, rounds)
    calibrator = Calibrator.fit(fitted.log_odds, y, contender.params.calibration, contender.params.seed)
    return contender.model(features, tiers, fitted.rounds).fit(X, y, calibrator=calibrator), fitted
