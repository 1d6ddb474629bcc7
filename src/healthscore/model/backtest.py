"""The published backtest: how the score would have done on each of the latest labelled dates.

Rolling origin: for each of the last K labelled as_of dates, the chosen family and settings are
fitted and calibrated (cross-fitted, as the shipped model) only on rows whose label horizon
closed before that date (the purge gap), then score that date's accounts. The family, capacity
and boosting rounds are the ones this run chose; nothing else about a date's model saw it.
Per date: ranking (ROC-AUC, PR-AUC, top-decile lift), calibration (Brier, ECE, mean predicted vs
observed), the unhealthy tier's precision and recall (the share of churners it caught), each
tier's share and churn rate, and how many accounts changed tier since the previous date.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from healthscore.dataset import Dataset, FeatureSpec
from healthscore.model.crossfit import Contender, fit_crossfitted, make_folds
from healthscore.model.evaluation import evaluate
from healthscore.model.split import purge_gap
from healthscore.scores_file import TIERS
from healthscore.settings import TrainingConfig

FOLDS = 3  # per date: fewer than the main run's, to keep a backtest within the cost of a training run


@dataclass
class Backtest:
    figures: pd.DataFrame = field(default_factory=pd.DataFrame)  # one row per as_of date
    scores: pd.DataFrame = field(default_factory=pd.DataFrame)  # every backtest row: as_of, id, churned, probability, tier


def backtest(dataset: Dataset, features: list[FeatureSpec], contender: Contender, config: TrainingConfig,
             rounds: int | None = None) -> Backtest:
    spec, frame = dataset.spec, dataset.labelled
    as_of = frame[spec.as_of_column]
    y = frame[spec.label_column].astype(int)
    gap = purge_gap(spec.horizon_days, config.split)
    rows, scored, previous = [], [], None
    for date in sorted(as_of.unique())[-config.split.backtest_dates:] if config.split.backtest_dates else []:
        before = frame[(as_of + gap <= date) & (as_of < date)]
        if before[spec.as_of_column].nunique() < FOLDS:
            continue  # too little history before this date for a model of its own
        folds = make_folds(before, spec, FOLDS, gap, config.split.seed, dated=True)
        model, _ = fit_crossfitted(contender, features, config.tiers, before, y.loc[before.index].to_numpy(), folds, rounds=rounds)
        now = frame[as_of == date]
        scores = model.score(now)
        tiers = pd.Series(scores["tier"].to_numpy(), index=now[spec.id_column].to_numpy())
        rows.append(_figures(date, len(before), y.loc[now.index].to_numpy(), scores["churn_probability"].to_numpy(), tiers, previous))
        scored.append(pd.DataFrame({"as_of": date, "id": tiers.index, "churned": y.loc[now.index].to_numpy(),
                                    "churn_probability": scores["churn_probability"].to_numpy(), "tier": tiers.to_numpy()}))
        previous = tiers
    return Backtest(pd.DataFrame(rows), pd.concat(scored, ignore_index=True) if scored else pd.DataFrame())


def _figures(date, trained_rows: int, y: np.ndarray, p: np.ndarray, tiers: pd.Series, previous: pd.Series | None) -> dict:
    m = evaluate(y, p, tiers.to_numpy())
    unhealthy = tiers.to_numpy() == "unhealthy"
    out = {"as_of": date, "trained_rows": trained_rows, "rows": len(y), "churners": int(y.sum()),
           **{k: m[k] for k in ("roc_auc", "pr_auc", "brier", "ece", "top_decile_lift", "churn_rate")},
           "mean_predicted": float(p.mean()),
           "unhealthy_precision": m["churn_rate_unhealthy"],
           "unhealthy_recall": float(y[unhealthy].sum() / y.sum()) if y.sum() else float("nan")}
    for tier in TIERS:
        out[f"share_{tier}"] = m[f"accounts_{tier}"] / len(y)
        out[f"churn_rate_{tier}"] = m[f"churn_rate_{tier}"]
    if previous is None:
        out["tier_flip_rate"] = float("nan")
    else:
        both = tiers.index.intersection(previous.index)
        out["tier_flip_rate"] = float((tiers.loc[both] != previous.loc[both]).mean()) if len(both) else float("nan")
    return out
