"""The published backtest: every figure recomputed here from the rows it was made of."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from healthscore.model.training import train
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset


@pytest.fixture(scope="module")
def result():
    data = synthetic_dataset(accounts=700, months=14, seed=8)
    config = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20),
                            split=SplitConfig(test_dates=3, backtest_dates=3))
    return data, train(data, config)


def test_backtest_dates_are_the_latest_and_each_model_saw_only_earlier_labels(result):
    data, r = result
    figures = r.backtest.figures
    dates = sorted(data.labelled["as_of"].unique())[-3:]
    assert list(figures["as_of"]) == dates
    as_of = data.labelled["as_of"]
    for row in figures.itertuples():
        closed = int((as_of + dt.timedelta(days=90) <= row.as_of).sum())  # label horizon closed before the date
        assert row.trained_rows == closed and row.rows == int((as_of == row.as_of).sum())


def test_backtest_figures_match_an_independent_recomputation(result):
    _, r = result
    scores, figures = r.backtest.scores, r.backtest.figures.set_index("as_of")
    previous = None
    for date, rows in scores.groupby("as_of"):
        y, p, tier = rows["churned"].to_numpy(), rows["churn_probability"].to_numpy(), rows["tier"].to_numpy()
        f = figures.loc[date]
        assert f["roc_auc"] == pytest.approx(roc_auc_score(y, p))
        assert f["pr_auc"] == pytest.approx(average_precision_score(y, p))
        assert f["brier"] == pytest.approx(np.mean((p - y) ** 2))
        order = np.argsort(p, kind="stable")
        bins = np.array_split(order, 10)
        assert f["ece"] == pytest.approx(sum(len(b) * abs(p[b].mean() - y[b].mean()) for b in bins) / len(y))
        top = np.argsort(-p, kind="stable")[: len(p) // 10]
        assert f["top_decile_lift"] == pytest.approx(y[top].mean() / y.mean())
        red = tier == "unhealthy"
        assert f["unhealthy_precision"] == pytest.approx(y[red].mean())
        assert f["unhealthy_recall"] == pytest.approx(y[red].sum() / y.sum())
        assert f["share_healthy"] + f["share_at_risk"] + f["share_unhealthy"] == pytest.approx(1)
        assert f["mean_predicted"] == pytest.approx(p.mean())
        now = dict(zip(rows["id"], tier))
        if previous is None:
            assert np.isnan(f["tier_flip_rate"])
        else:
            both = [a for a in now if a in previous]
            assert f["tier_flip_rate"] == pytest.approx(np.mean([now[a] != previous[a] for a in both]))
        previous = now
    # a score worth publishing: it ranks and its red tier catches churners well beyond its share
    assert (figures["roc_auc"] > 0.7).all()
    assert (figures["unhealthy_recall"] > figures["share_unhealthy"] * 1.5).all()
