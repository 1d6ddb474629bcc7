"""The data scientist's loop, step one: train on history and prove the model on the future.

`train` fits the calibrated LightGBM model and its two baselines on the same time-ordered
slices, scores all of them (plus the generator's true probabilities on demo data) on the same
test slice, and turns the model's SHAP values into the learned weights of each metric.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.dataset import Dataset
from healthscore.model.baselines import LogisticBaseline, ScorecardBaseline
from healthscore.model.estimator import HealthModel
from healthscore.model.evaluation import comparison_table, evaluate
from healthscore.model.settings import TrainingConfig
from healthscore.model.split import Split, split_dataset

MODEL, LOGISTIC, SCORECARD, ORACLE = "lightgbm_calibrated", "logistic_regression", "hand_weighted_scorecard", "oracle"


class ModelQualityError(RuntimeError):
    """The learned model does not beat the classic baseline: do not ship it."""


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


def load_truth(path: Path) -> pd.DataFrame | None:
    """The generator's true churn probabilities by account and as_of (demo data only)."""
    if not path.exists():
        return None
    truth = pd.read_parquet(path).rename(columns={"p_churn_90d": "p"})
    truth["as_of"] = pd.to_datetime(truth["as_of"]).dt.date
    return truth


def truth_for(truth: pd.DataFrame, rows: pd.DataFrame) -> np.ndarray | None:
    """The true probabilities of these rows; None unless every row has one."""
    merged = rows[["account_id", "as_of"]].merge(truth, on=["account_id", "as_of"], how="left")
    return None if merged["p"].isna().any() else merged["p"].to_numpy()


def learned_weights(model: HealthModel, X: pd.DataFrame) -> pd.DataFrame:
    """Each metric's share of the mean |SHAP| (exact TreeSHAP on the log-odds), summing to 100."""
    contrib = model.booster_.predict(model.matrix(X), pred_contrib=True)[:, :-1]
    mean_abs = np.abs(contrib).mean(axis=0)
    rows = [
        {"metric": f.code, "label": f.label, "family": f.family, "good_direction": f.good_direction,
         "mean_abs_shap": float(v), "weight_pct": float(100 * v / mean_abs.sum())}
        for f, v in zip(model.features, mean_abs)
    ]
    return pd.DataFrame(rows).sort_values("weight_pct", ascending=False, kind="stable").reset_index(drop=True)


def train(dataset: Dataset, config: TrainingConfig | None = None, truth: Path | None = None) -> TrainingResult:
    """Fit, calibrate, compare with the baselines on the test slice, and explain the weights."""
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
        cuts = model.tiers_ if name == MODEL else config.tiers.thresholds(predict(X_tr)[:, 1])
        results[name] = evaluate(y_te, test[name], cuts.assign(test[name]))
    known = load_truth(truth) if truth and spec.as_of_column else None
    oracle = truth_for(known, X_te) if known is not None else None
    if oracle is not None:
        test[ORACLE] = oracle
        train_truth = truth_for(known, X_tr)
        tiers = config.tiers.thresholds(train_truth).assign(oracle) if train_truth is not None else None
        results[ORACLE] = evaluate(y_te, oracle, tiers)

    return TrainingResult(
        model=model,
        split=split,
        split_summary=split.summary(dataset),
        comparison=comparison_table(results),
        scorecard=learned_weights(model, X_te),
        test=test,
        dataset_digest=dataset_digest(dataset.frame),
        config=config,
    )
