"""The data scientist's loop, step one: train on history and prove the model on the future.

`train` fits the calibrated LightGBM model and its two baselines on the same time-ordered
slices, scores all of them (plus any extra contender the caller brings, such as the demo's true
probabilities) on the same test slice, and turns the model's SHAP values into the learned
weights of each metric. `TrainingResult.check_quality` is the gate a model must pass before it
may be registered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthscore.dataset import Dataset
from healthscore.errors import ModelQualityError
from healthscore.model.baselines import LogisticBaseline, ScorecardBaseline
from healthscore.model.estimator import HealthModel
from healthscore.model.evaluation import comparison_table, evaluate
from healthscore.model.split import Split, split_dataset
from healthscore.model.tiers import freeze_tiers
from healthscore.settings import TrainingConfig

MODEL, LOGISTIC, SCORECARD = "lightgbm_calibrated", "logistic_regression", "hand_weighted_scorecard"
LABELS = {MODEL: "LightGBM (calibrated)", LOGISTIC: "Logistic regression", SCORECARD: "Hand-weighted scorecard"}


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
    model: HealthModel
    split: Split
    split_summary: pd.DataFrame
    comparison: pd.DataFrame  # contenders x metrics, all on the test slice
    scorecard: pd.DataFrame  # the learned weights
    test: pd.DataFrame  # test rows: keys, features, label, and every contender's churn probability
    dataset_digest: str
    config: TrainingConfig
    labels: dict[str, str]  # contender -> its name in tables and plots

    def check_quality(self) -> None:
        model, logistic = self.comparison.loc[MODEL, "roc_auc"], self.comparison.loc[LOGISTIC, "roc_auc"]
        if model < logistic:
            raise ModelQualityError(
                f"the model's test ROC-AUC {model:.4f} is below the logistic regression's {logistic:.4f}: "
                "more history, other metrics or other model settings are needed before this model can be trusted"
            )


def dataset_digest(frame: pd.DataFrame) -> str:
    """A content hash of the training data, logged so a run can be traced to its exact input."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[:16]


def learned_weights(model: HealthModel, X: pd.DataFrame) -> pd.DataFrame:
    """Each metric's share of the mean |SHAP| (exact TreeSHAP on the log-odds), summing to 100."""
    contrib = model.contributions(X)[:, :-1]
    mean_abs = np.abs(contrib).mean(axis=0)
    rows = [
        {"metric": f.code, "label": f.label, "family": f.family, "good_direction": f.good_direction,
         "mean_abs_shap": float(v), "weight_pct": float(100 * v / mean_abs.sum())}
        for f, v in zip(model.features, mean_abs)
    ]
    return pd.DataFrame(rows).sort_values("weight_pct", ascending=False, kind="stable").reset_index(drop=True)


def train(dataset: Dataset, config: TrainingConfig | None = None, extra: list[ExtraContender] = ()) -> TrainingResult:
    """Fit, calibrate, compare with the baselines (and `extra` contenders) on the test slice, and
    explain the weights."""
    config = config or TrainingConfig()
    spec = dataset.spec
    frame = dataset.labelled
    split = split_dataset(dataset, config.split)
    y = frame[spec.label_column].astype(int)
    parts = {name: (frame.loc[getattr(split, name)], y.loc[getattr(split, name)]) for name in ("train", "valid", "test")}
    (X_tr, y_tr), (X_va, y_va), (X_te, y_te) = parts["train"], parts["valid"], parts["test"]

    model = HealthModel(spec.features, config.params, config.tiers).fit(X_tr, y_tr, X_va, y_va)
    logistic = LogisticBaseline(spec.features).fit(X_tr, y_tr)
    scorecard = ScorecardBaseline(spec.features).fit(X_tr, y_tr, X_va, y_va)
    contenders = {MODEL: model.predict_proba, LOGISTIC: logistic.predict_proba, SCORECARD: scorecard.predict_proba}

    keys = [spec.id_column] + ([spec.as_of_column] if spec.as_of_column else [])
    test = X_te[keys + spec.feature_codes].copy()
    test["churned"] = y_te.to_numpy()
    results = {}
    for name, predict in contenders.items():
        test[name] = predict(X_te)[:, 1]
        # each contender's tiers are cut on its own training predictions; the model froze its own in fit
        cuts = model.tiers_ if name == MODEL else freeze_tiers(config.tiers, predict(X_tr)[:, 1])
        results[name] = evaluate(y_te, test[name], cuts.assign(test[name]))
    for contender in extra:
        p = contender.predict(X_te)
        if p is None:
            continue
        test[contender.name] = p
        on_train = contender.predict(X_tr)
        tiers = freeze_tiers(config.tiers, on_train).assign(p) if on_train is not None else None
        results[contender.name] = evaluate(y_te, p, tiers)

    return TrainingResult(
        model=model,
        split=split,
        split_summary=split.summary(dataset),
        comparison=comparison_table(results),
        scorecard=learned_weights(model, X_te),
        test=test,
        dataset_digest=dataset_digest(dataset.frame),
        config=config,
        labels=LABELS | {c.name: c.label for c in extra},
    )
