"""The data scientist's loop, step one: train on history and prove the model on the future.

`train` sets the test slice aside (the latest dates, or a share of accounts), cross-fits every
contender (LightGBM at a few capacities, a regularised logistic regression) on the development
rows before it, and picks the one with the lowest out-of-fold log loss. That model, calibrated
on its out-of-fold predictions, is scored on the test slice beside the baselines (plus any extra
contender the caller brings, such as the demo's true probabilities); the model that ships is the
same family and settings refitted on every labelled row. A rolling-origin backtest then shows
how the score would have done on each of the latest dates. `TrainingResult.check_quality` is the
gate a model must pass before it may be registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from healthscore.dataset import Dataset
from healthscore.errors import ModelQualityError
from healthscore.model.backtest import Backtest, backtest
from healthscore.model.baselines import LogisticBaseline, ScorecardBaseline
from healthscore.model.calibration import Calibrator
from healthscore.model.crossfit import contenders, cross_fit, fit_crossfitted, make_folds
from healthscore.model.directions import resolve_directions
from healthscore.model.estimator import HealthModel
from healthscore.model.evaluation import calibration_in_the_large, comparison_table, evaluate, paired_auc_difference
from healthscore.model.split import Split, is_dated, purge_gap, split_dataset
from healthscore.model.tiers import freeze_tiers
from healthscore.settings import TrainingConfig

MODEL, LOGISTIC, SCORECARD = "health_model", "logistic_regression", "hand_weighted_scorecard"
LABELS = {MODEL: "Health model (calibrated)", LOGISTIC: "Logistic regression", SCORECARD: "Hand-weighted scorecard"}


@dataclass(frozen=True)
class ExtraContender:
    """A contender the caller brings, shown beside the model on the test slice but never shipped
    (the demo's true probabilities). `predict` gives churn probabilities for rows, or None when it
    does not know all of them."""

    name: str
    label: str  # for tables and plots
    predict: Callable[[pd.DataFrame], np.ndarray | None] = field(repr=False)


@dataclass
class TrainingResult:
    model: HealthModel  # what ships: the chosen family and settings refitted on every labelled row
    evaluated: HealthModel  # the same, fitted on the development rows only: the test figures are its
    split: Split
    split_summary: pd.DataFrame
    comparison: pd.DataFrame  # contenders x metrics, all on the test slice
    selection: pd.DataFrame  # every cross-fitted contender: out-of-fold log loss and ROC-AUC, rounds, chosen
    directions: pd.DataFrame  # each metric's good direction and where it came from
    calibration_check: dict[str, float]  # calibration-in-the-large on the test slice (the latest dates)
    backtest: Backtest  # rolling origin over the latest dates (empty without dates)
    scorecard: pd.DataFrame  # the learned weights
    test: pd.DataFrame  # test rows: keys, features, label, and every contender's churn probability
    dataset_digest: str
    config: TrainingConfig
    labels: dict[str, str]  # contender -> its name in tables and plots
    folds: int = 0  # cross-fitting folds used (a short history may get fewer than the settings ask)
    gate: dict[str, float] = field(default_factory=dict)  # the model's test ROC-AUC minus the logistic regression's, 95% interval

    def check_quality(self) -> None:
        """The model may not ship if it is worse than the logistic regression beyond the noise of
        the test slice (the upper end of the paired bootstrap interval below zero)."""
        if self.gate["high"] < 0:
            raise ModelQualityError(
                f"the model's test ROC-AUC is {-self.gate['difference']:.4f} below the logistic regression's "
                f"(95% interval of the difference {self.gate['low']:+.4f} .. {self.gate['high']:+.4f}): more history, "
                "other metrics or other model settings are needed before this model can be trusted"
            )


def dataset_digest(frame: pd.DataFrame) -> str:
    """A content hash of the training data, logged so a run can be traced to its exact input."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def learned_weights(model: HealthModel, X: pd.DataFrame) -> pd.DataFrame:
    """Each metric's share of the mean |SHAP| (exact, on the log-odds), summing to 100."""
    contrib = model.contributions(X)[:, :-1]
    mean_abs = np.abs(contrib).mean(axis=0)
    rows = [
        {"metric": f.code, "label": f.label, "family": f.family, "good_direction": f.good_direction,
         "mean_abs_shap": float(v), "weight_pct": float(100 * v / mean_abs.sum()) if mean_abs.sum() else 0.0}
        for f, v in zip(model.features, mean_abs)
    ]
    return pd.DataFrame(rows).sort_values("weight_pct", ascending=False, kind="stable").reset_index(drop=True)


def train(dataset: Dataset, config: TrainingConfig | None = None, extra: list[ExtraContender] = ()) -> TrainingResult:
    """Cross-fit and choose, calibrate, compare with the baselines (and `extra` contenders) on
    the test slice, refit on every labelled row, backtest, and explain the weights."""
    config = config or TrainingConfig()
    # BLAS threads, like LightGBM's, cost more than they save on matrices this size (settings: threads)
    with threadpool_limits(limits=config.params.threads or None):
        return _train(dataset, config, list(extra))


def _train(dataset: Dataset, config: TrainingConfig, extra: list[ExtraContender]) -> TrainingResult:
    spec = dataset.spec
    frame = dataset.labelled
    split = split_dataset(dataset, config.split)
    y = frame[spec.label_column].astype(int)
    X_dev, y_dev = frame.loc[split.develop], y.loc[split.develop].to_numpy()
    X_te, y_te = frame.loc[split.test], y.loc[split.test].to_numpy()
    features, directions = resolve_directions(spec.features, X_dev, y_dev, config)
    gap = purge_gap(spec.horizon_days, config.split)
    folds = make_folds(X_dev, spec, config.split.folds, gap, config.split.seed, is_dated(dataset))

    fits = [cross_fit(c, features, X_dev, y_dev, folds) for c in contenders(config.params)]
    selection = pd.DataFrame([f.summary(y_dev) for f in fits]).set_index("contender")
    best = fits[int(np.argmin(selection["oof_log_loss"]))]
    selection["chosen"] = selection.index == best.contender.name
    evaluated, _ = fit_crossfitted(best.contender, features, config.tiers, X_dev, y_dev, folds, best)

    logistic = LogisticBaseline(features).fit(X_dev, y_dev)
    # a scorecard's points learn nothing from labels: its sigmoid may be fitted on the same rows
    scorecard = ScorecardBaseline(features).fit(X_dev, y_dev, X_dev, y_dev)
    predictors = {MODEL: evaluated.predict_proba, LOGISTIC: logistic.predict_proba, SCORECARD: scorecard.predict_proba}
    keys = [spec.id_column] + ([spec.as_of_column] if spec.as_of_column else [])
    test = X_te[keys + spec.feature_codes].copy()
    test["churned"] = y_te
    results = {}
    for name, predict in predictors.items():
        test[name] = predict(X_te)[:, 1]
        # each contender's tiers are cut on its own development predictions; the model froze its own in fit
        cuts = evaluated.tiers_ if name == MODEL else freeze_tiers(config.tiers, predict(X_dev)[:, 1])
        results[name] = evaluate(y_te, test[name], cuts.assign(test[name]))
    for contender in extra:
        p = contender.predict(X_te)
        if p is None:
            continue
        test[contender.name] = p
        on_dev = contender.predict(X_dev)
        tiers = freeze_tiers(config.tiers, on_dev).assign(p) if on_dev is not None else None
        results[contender.name] = evaluate(y_te, p, tiers)

    # The shipped model learns from every labelled row; its calibrator from every prediction made
    # on rows the predicting model never saw (the folds' on development, the evaluated model's on test).
    calibrator = Calibrator.fit(np.r_[best.log_odds, evaluated.log_odds(X_te)], np.r_[y_dev, y_te],
                                config.params.calibration, config.params.seed)
    model = best.contender.model(features, config.tiers, best.rounds).fit(frame, y.to_numpy(), calibrator=calibrator)

    return TrainingResult(
        model=model,
        evaluated=evaluated,
        split=split,
        split_summary=split.summary(dataset),
        comparison=comparison_table(results),
        selection=selection,
        directions=directions,
        calibration_check=calibration_in_the_large(y_te, test[MODEL]),
        backtest=backtest(dataset, features, best.contender, config, best.rounds or None) if is_dated(dataset) else Backtest(),
        scorecard=learned_weights(model, X_te),
        test=test,
        dataset_digest=dataset_digest(dataset.frame),
        config=config,
        folds=len(folds),
        labels=LABELS | {MODEL: f"Health model ({best.contender.name}, calibrated)"} | {c.name: c.label for c in extra},
        gate=paired_auc_difference(y_te, test[MODEL], test[LOGISTIC], seed=config.split.seed),
    )
