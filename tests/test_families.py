"""The family is chosen honestly: a logistic regression wins a table whose risk is linear in its
metrics, trees win one with a threshold interaction, and whichever wins keeps every promise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from healthscore.dataset import Dataset, DatasetSpec, FeatureSpec
from healthscore.model.estimator import BOOSTER_FILE, MANIFEST_FILE, MODEL_FILE, HealthModel
from healthscore.model.training import train
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig

CONFIG = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=300, early_stopping_rounds=30),
                        split=SplitConfig(folds=4))


def _snapshot(n: int, seed: int, logit) -> Dataset:
    """A dateless snapshot table: columns state no good direction; churn drawn from `logit`."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"m{i}": rng.normal(size=n) for i in range(8)})
    frame["noise"] = rng.normal(size=n)
    frame["region"] = pd.array(rng.choice(["north", "south", "east"], n), dtype="string")
    frame["churned"] = pd.array(rng.random(n) < 1 / (1 + np.exp(-logit(frame))), dtype="boolean")
    frame.insert(0, "customer", [f"C{i:05d}" for i in range(n)])
    features = [FeatureSpec(code=c, label=c) for c in frame.columns[1:-2]] + [FeatureSpec(code="region", label="Region", kind="categorical")]
    return Dataset(frame, DatasetSpec(origin="snapshot", id_column="customer", as_of_column=None, features=features))


@pytest.fixture(scope="module")
def linear():
    weights = np.array([0.9, -0.8, 0.6, -0.5, 0.4, -0.3, 0.25, -0.2])
    data = _snapshot(1600, 1, lambda f: -1.0 + f[[f"m{i}" for i in range(8)]].to_numpy() @ weights)
    return data, train(data, CONFIG)


def test_logistic_regression_wins_a_linear_table_and_ships_with_exact_contributions(linear, tmp_path):
    data, result = linear
    sel = result.selection
    assert sel.loc["logistic", "chosen"] and sel["oof_log_loss"].idxmin() == "logistic"
    model = result.model
    assert model.family == "logistic"
    X = data.frame.head(300)
    contrib = model.contributions(X)
    np.testing.assert_allclose(contrib.sum(axis=1), model.log_odds(X), atol=1e-10)
    # the saved model is JSON only (no booster, no pickle) and predicts identically
    folder = model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == sorted([MANIFEST_FILE, MODEL_FILE])
    loaded = HealthModel.load(folder)
    pd.testing.assert_frame_equal(loaded.score(X), model.score(X))
    np.testing.assert_allclose(loaded.contributions(X), contrib)


def test_snapshot_directions_are_inferred_with_a_minimum_strength(linear):
    _, result = linear
    d = result.directions.set_index("metric")
    assert d.loc["m0", "good_direction"] == "lower" and d.loc["m0", "source"] == "inferred"  # more of m0: more churn
    assert d.loc["m1", "good_direction"] == "higher"
    assert d.loc["noise", "good_direction"] == "none" and "within noise" in d.loc["noise", "source"]
    # the scorecard baseline now has directions to weigh: better than a coin
    assert result.comparison.loc["hand_weighted_scorecard", "roc_auc"] > 0.65


def test_a_logistic_coefficient_never_contradicts_a_good_direction(linear):
    data, _ = linear
    # say m0 is healthy when high, the opposite of the data: its coefficient is held at zero
    features = [f.model_copy(update={"good_direction": "higher"}) if f.code == "m0" else f for f in data.spec.features]
    model = HealthModel(features, CONFIG.params, family="logistic").fit_scorer(data.frame, data.frame["churned"].astype(int))
    m0 = [t for t in model.linear_.terms if t.feature == "m0" and t.kind == "value"][0]
    assert m0.coef == 0 and model.linear_.held == ["m0"]
    base = data.frame.head(50)
    curves = np.array([model.log_odds(base.assign(m0=v)) for v in np.linspace(-3, 3, 7)])
    assert (np.diff(curves, axis=0) <= 1e-12).all()


def test_trees_win_a_table_with_a_threshold_interaction(tmp_path):
    data = _snapshot(2400, 2, lambda f: -2.0 + 3.5 * ((f["m0"] > 0.5) & (f["m1"] > 0.5)) - 1.5 * (f["m2"].abs() > 1.2))
    result = train(data, CONFIG)
    chosen = result.selection.index[result.selection["chosen"]][0]
    assert result.model.family == "lightgbm" and chosen.startswith("lightgbm")
    assert result.selection.loc[chosen, "oof_log_loss"] < result.selection.loc["logistic", "oof_log_loss"] - 0.01
    folder = result.model.save(tmp_path / "m")
    assert {BOOSTER_FILE, MANIFEST_FILE, MODEL_FILE} == {p.name for p in folder.iterdir()}
