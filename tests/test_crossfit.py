"""Cross-fitting and bounded calibration: no row is scored by a model that trained on it, and no
calibrated probability claims certainty."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import log_loss, roc_auc_score

from healthscore.dataset import Dataset, DatasetSpec, FeatureSpec
from healthscore.errors import SplitError
from healthscore.model.calibration import Calibrator
from healthscore.model.crossfit import Contender, cross_fit, make_folds
from healthscore.model.split import split_dataset
from healthscore.model.training import train
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

GAP = dt.timedelta(days=90)
# leaves of one row: a model that memorises its training rows
MEMORISER = ModelParams(num_leaves=64, min_data_in_leaf=1, lambda_l2=0, learning_rate=0.3, max_rounds=60,
                        early_stopping_rounds=60, feature_fraction=1, bagging_fraction=1, search=False)


def test_date_folds_hold_each_row_out_once_and_purge_both_sides():
    data = synthetic_dataset(accounts=200, months=14)
    frame = data.frame
    folds = make_folds(frame, data.spec, 4, GAP, 7, dated=True)
    assert len(folds) == 4
    held = np.concatenate([h for _, h in folds])
    assert sorted(held) == list(range(len(frame)))  # every row held out exactly once
    as_of = frame["as_of"].to_numpy()
    for fit, out in folds:
        first, last = min(as_of[out]), max(as_of[out])
        assert not set(fit) & set(out)
        for d in set(as_of[fit]):  # a fitting row's label horizon never overlaps the held-out block's
            assert d + GAP <= first or d >= last + GAP


def test_a_short_history_gets_fewer_folds_or_a_clear_error():
    data = synthetic_dataset(accounts=100, months=14)
    frame = data.frame[data.frame["as_of"] <= dt.date(2023, 6, 1)]
    folds = make_folds(frame, data.spec, 4, GAP, 7, dated=True)
    assert 2 <= len(folds) < 4 and all(len(fit) for fit, _ in folds)
    with pytest.raises(SplitError, match="too few to cross-fit with a 90-day purge"):
        make_folds(frame[frame["as_of"] <= dt.date(2023, 5, 1)], data.spec, 4, GAP, 7, dated=True)


def test_out_of_fold_predictions_come_from_models_that_never_saw_the_row():
    """On labels that are pure noise, a memorising model scores its own training rows almost
    perfectly; its out-of-fold scores must be as good as chance."""
    rng = np.random.default_rng(0)
    n = 1200
    frame = pd.DataFrame({"account_id": [f"A{i}" for i in range(n)], "x1": rng.normal(size=n), "x2": rng.normal(size=n),
                          "churned": rng.random(n) < 0.3})
    spec = DatasetSpec(origin="snapshot", as_of_column=None, features=[FeatureSpec(code="x1", label="x1"), FeatureSpec(code="x2", label="x2")])
    y = frame["churned"].astype(int).to_numpy()
    folds = make_folds(frame, spec, 4, GAP, 7, dated=False)
    for fit, out in folds:  # stratified by account: none in both
        assert not set(frame["account_id"].iloc[fit]) & set(frame["account_id"].iloc[out])
    contender = Contender("memoriser", "lightgbm", MEMORISER)
    oof = cross_fit(contender, spec.features, frame, y, folds, rounds=60)
    in_sample = contender.model(spec.features, rounds=60).fit_scorer(frame, y).log_odds(frame)
    assert roc_auc_score(y, in_sample) > 0.9
    assert abs(roc_auc_score(y, oof.log_odds) - 0.5) < 0.06


def test_every_labelled_row_is_used_and_the_test_slice_is_unseen():
    data = synthetic_dataset(accounts=600, months=14)
    config = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20),
                            split=SplitConfig(test_dates=3, backtest_dates=0))
    result = train(data, config)
    assert result.model.reference_.rows == len(data.labelled)  # the shipped model: every labelled row
    assert result.evaluated.reference_.rows == len(result.split.develop)  # the evaluated one: never the test rows
    assert result.model.calibrator_.rows == len(result.split.develop) + len(result.split.test)
    assert result.split_summary.loc["shipped", "rows"] == len(data.labelled)


def test_calibration_is_bounded_and_chosen_by_cross_validated_log_loss():
    rng = np.random.default_rng(1)
    z = np.r_[rng.normal(-6, 1, 1500), rng.normal(4, 1, 500)]  # separable ends: isotonic would say 0 and 1
    y = (z + rng.normal(0, 1.5, len(z))) > 0
    n = len(y)
    for method in ("isotonic", "sigmoid", "none"):
        p = Calibrator.fit(z, y, method).transform(np.r_[z, -50.0, 50.0])
        assert 0 < p.min() and p.max() < 1
        assert p.min() >= 0.5 / (n + 1) and p.max() <= 1 - 0.5 / (n + 1)
    iso = Calibrator.fit(z, y, "isotonic")
    assert 0 < iso.y[0] < 0.01 and 0.99 < iso.y[-1] < 1
    # over-confident scores: "auto" recalibrates, and its choice has the lowest held-out log loss
    over = rng.normal(-1, 2, 4000)
    truth = rng.random(4000) < 1 / (1 + np.exp(-0.4 * over))
    auto = Calibrator.fit(over, truth)
    assert auto.method != "none" and auto.cv_log_loss[auto.method] == min(auto.cv_log_loss.values())
    raw = log_loss(truth, 1 / (1 + np.exp(-over)))
    assert log_loss(truth, auto.transform(over)) < raw - 0.02


def test_no_exact_zero_or_one_on_a_snapshot_table():
    data = synthetic_dataset(accounts=3000, months=1, seed=4)
    snapshot = Dataset(data.frame.drop(columns="as_of"), data.spec.model_copy(update={"as_of_column": None, "origin": "snapshot"}))
    result = train(snapshot, TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20)))
    p = result.model.predict_proba(snapshot.frame)[:, 1]
    assert (p > 0).all() and (p < 1).all()
    assert result.backtest.figures.empty  # no dates, no rolling origin
    assert split_dataset(snapshot).dates == {}
