"""HealthModel, calibration, tiers, split: behaviour a data scientist relies on."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from healthscore.dataset import Dataset
from healthscore.errors import ModelIntegrityError, ModelNotFound, ModelQualityError, SplitError
from healthscore.model.calibration import Calibrator
from healthscore.model.estimator import BOOSTER_FILE, MANIFEST_FILE, MODEL_FILE, HealthModel
from healthscore.model.evaluation import expected_calibration_error, top_decile_lift
from healthscore.model.split import split_dataset
from healthscore.model.tiers import freeze_tiers
from healthscore.model.training import LOGISTIC, MODEL, train
from healthscore.settings import ModelParams, SplitConfig, TierPolicy, TrainingConfig
from synthetic import synthetic_dataset

FAST = ModelParams(learning_rate=0.1, max_rounds=300, early_stopping_rounds=30)


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset(accounts=1500, months=14)


@pytest.fixture(scope="module")
def result(data):
    return train(data, TrainingConfig(params=FAST, split=SplitConfig(test_dates=3)))


def test_time_split_is_ordered_and_purged(data):
    split = split_dataset(data, SplitConfig(test_dates=3, purge=True))
    assert split.dates["test"] == [dt.date(2023, 12, 1), dt.date(2024, 1, 1), dt.date(2024, 2, 1)]
    assert max(split.dates["develop"]) < min(split.dates["test"])
    # purge: every development label horizon (90 days) closes before the test starts
    assert max(split.dates["develop"]) + dt.timedelta(days=90) <= min(split.dates["test"])
    assert not set(split.develop) & set(split.test)
    with pytest.raises(SplitError, match="too few"):
        split_dataset(data, SplitConfig(test_dates=8, folds=6))


def test_a_split_that_does_not_fit_names_settings_that_do(data):
    """Each setting the error names does split these dates; a horizon one day longer than the one
    it names does not."""
    config = SplitConfig(test_dates=8, folds=6)
    with pytest.raises(SplitError) as failed:
        split_dataset(data, config)
    message, named = str(failed.value), 0
    for pattern, key in ((r"model\.split\.test_dates: (\d+)", "test_dates"), (r"model\.split\.folds: (\d+)", "folds")):
        if found := re.search(pattern, message):
            split_dataset(data, config.model_copy(update={key: int(found[1])}))
            named += 1
    if "model.split.purge: false" in message:
        split_dataset(data, config.model_copy(update={"purge": False}))
        named += 1
    if found := re.search(r"horizon of at most (\d+) days", message):
        days = int(found[1])
        split_dataset(Dataset(data.frame, data.spec.model_copy(update={"horizon_days": days})), config)
        with pytest.raises(SplitError):
            split_dataset(Dataset(data.frame, data.spec.model_copy(update={"horizon_days": days + 1})), config)
        named += 1
    assert named >= 3 and "more history" in message


def test_dateless_snapshot_split_keeps_each_account_in_one_slice(data):
    snapshot = synthetic_dataset(accounts=2000, months=1)
    snapshot.spec = snapshot.spec.model_copy(update={"as_of_column": None})
    split = split_dataset(snapshot)
    ids = snapshot.frame["account_id"]
    slices = [set(ids.loc[getattr(split, s)]) for s in ("develop", "test")]
    assert not (slices[0] & slices[1])
    assert len(split.test) == pytest.approx(400, abs=40)


def test_model_beats_logistic_and_calibration_is_cheap(result):
    table = result.comparison
    assert table.loc[MODEL, "roc_auc"] > table.loc[LOGISTIC, "roc_auc"]
    test = result.test
    raw_auc = roc_auc_score(test["churned"], result.evaluated.log_odds(test))  # the model the test figures are of
    assert raw_auc - table.loc[MODEL, "roc_auc"] <= 0.002  # calibration must not cost ranking
    assert table.loc[MODEL, "ece"] < 0.03
    rates = [table.loc[MODEL, f"churn_rate_{t}"] for t in ("healthy", "at_risk", "unhealthy")]
    assert rates[0] < rates[1] < rates[2]
    result.check_quality()


def test_weights_find_the_true_drivers(result):
    assert result.scorecard["metric"].iloc[0] == "usage"
    assert result.scorecard["weight_pct"].sum() == pytest.approx(100)


def test_monotone_constraints_follow_good_direction(result):
    """More usage never raises risk, more tickets never lowers it, whatever the other metrics."""
    grid = result.test.head(50)
    for code, sign in (("usage", -1), ("tickets", 1)):
        values = np.linspace(0, float(grid[code].max()) * 1.5, 25)
        curves = np.array([result.model.predict_proba(grid.assign(**{code: v}))[:, 1] for v in values])
        steps = np.diff(curves, axis=0) * sign
        assert (steps >= -1e-12).all(), code


def test_training_is_deterministic(data, result):
    again = train(data, result.config)
    pd.testing.assert_frame_equal(again.test, result.test)


def test_saved_model_is_text_and_json_and_predicts_identically(result, tmp_path):
    folder = result.model.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == sorted([BOOSTER_FILE, MODEL_FILE, MANIFEST_FILE])
    loaded = HealthModel.load(folder)
    X = result.test
    pd.testing.assert_frame_equal(loaded.score(X), result.model.score(X))
    scores = loaded.score(X)
    scale = loaded.tiers_.scale
    assert np.allclose(scores.health_score, np.clip(scale.offset - scale.factor * loaded.log_odds(X), 0, 100))
    assert scores.health_percentile.between(0, 100).all() and scores.health_score.between(0, 100).all()
    # riskier accounts rank lower, on the score as on the percentile
    order = np.argsort(scores.churn_probability.to_numpy(), kind="stable")
    assert np.all(np.diff(scores.health_percentile.to_numpy()[order]) <= 1e-9)
    assert np.all(np.diff(scores.health_score.to_numpy()[order]) <= 1e-9)


def test_the_score_scale_anchors_the_tiers_on_fixed_scores(result):
    """Linear in the log-odds, the tier cut-offs land on 40 and 70 for every model, and a fixed
    number of points doubles the odds."""
    model, X = result.model, result.test
    scale, z = model.tiers_.scale, model.log_odds(X)
    scores = model.score(X)
    assert list(scores["tier"]) == list(np.where(scores.health_score >= 70, "healthy", np.where(scores.health_score < 40, "unhealthy", "at_risk")))
    healthy_z, unhealthy_z = scale.log_odds(np.array([70.0, 40.0]))
    assert healthy_z < unhealthy_z
    assert np.isclose(model.probability(np.array([healthy_z]))[0], model.tiers_.healthy_below)
    assert np.isclose(model.probability(np.array([unhealthy_z]))[0], model.tiers_.unhealthy_from)
    # doubling the odds costs the same points anywhere on the scale
    pdo = scale.points_to_double_odds
    assert np.allclose(scale.unclipped(z) - scale.unclipped(z + np.log(2)), pdo)
    table = model.score_table()
    assert np.all(np.diff(table["churn_probability"]) <= 0) and list(table["health_score"]) == list(range(0, 101, 10))


def test_quantile_tiers_are_frozen_and_fixed_policy_is_honoured(result):
    model = result.model
    train_p = model.predict_proba(synthetic_dataset(accounts=1500, months=14).frame)[:, 1]
    assert model.tiers_.healthy_below < model.tiers_.unhealthy_from
    # a base that got worse shows as more red under the frozen cut-offs
    worse = result.test.assign(usage=result.test["usage"] / 5)
    assert (model.predict(worse) == "unhealthy").mean() > (model.predict(result.test) == "unhealthy").mean()
    fixed = freeze_tiers(TierPolicy(policy="fixed", healthy_below=0.05, unhealthy_from=0.2), train_p)
    assert list(fixed.assign(np.array([0.01, 0.05, 0.19, 0.2]))) == ["healthy", "at_risk", "at_risk", "unhealthy"]
    with pytest.raises(ValueError, match="needs healthy_below and unhealthy_from"):
        TierPolicy(policy="fixed")


def test_calibrators_map_monotonically_and_round_trip_as_json():
    rng = np.random.default_rng(0)
    z = rng.normal(-2, 1.5, 5000)
    y = rng.random(5000) < 1 / (1 + np.exp(-(0.6 * z - 0.5)))  # the raw scores are over-confident
    for method in ("isotonic", "sigmoid"):
        cal = Calibrator.fit(z, y, method)
        back = Calibrator.model_validate_json(cal.model_dump_json())
        p = back.transform(np.sort(z))
        assert np.all(np.diff(p) >= 0)
        assert expected_calibration_error(y, back.transform(z)) < expected_calibration_error(y, 1 / (1 + np.exp(-z)))
    assert Calibrator.fit(z[:200], y[:200]).method == "sigmoid"  # too few rows for isotonic


def test_evaluation_figures_on_known_cases():
    y = np.array([0] * 90 + [1] * 10)
    perfect = np.r_[np.zeros(90), np.ones(10)]
    assert top_decile_lift(y, perfect) == pytest.approx(10.0)
    # constant 0.1: nine bins of non-churners (off by 0.1) and one bin of churners (off by 0.9)
    assert expected_calibration_error(y, np.full(100, 0.1)) == pytest.approx((9 * 0.1 + 0.9) / 10)
    assert expected_calibration_error(y, perfect) == pytest.approx(0.0)


def test_a_model_worse_than_logistic_is_rejected(result):
    broken = {"difference": -0.02, "low": -0.03, "high": -0.01}  # worse beyond the test slice's noise
    with pytest.raises(ModelQualityError, match="below the logistic regression"):
        type(result)(**{**result.__dict__, "gate": broken}).check_quality()


def test_stable_tiers_leave_a_tier_only_past_the_margin(result):
    tiers = result.model.tiers_  # cut-offs: unhealthy below 40, healthy from 70
    scores = np.array([68.0, 66.0, 72.0, 74.0, 42.0, 44.0, 38.0, 36.0, 55.0, 71.0])
    previous = np.array(["healthy", "healthy", "at_risk", "at_risk", "unhealthy", "unhealthy", "at_risk", "at_risk", "healthy", None],
                        dtype=object)
    assert list(tiers.assign_scores(scores)) == ["at_risk", "at_risk", "healthy", "healthy", "at_risk", "at_risk",
                                                 "unhealthy", "unhealthy", "at_risk", "healthy"]
    assert list(tiers.assign_scores(scores, previous, margin=3)) == [
        "healthy",  # 68 is within 3 of 70: a healthy account stays healthy
        "at_risk",  # 66 is past it
        "at_risk", "healthy",  # to become healthy an at-risk account must reach 73
        "unhealthy", "at_risk",  # to leave unhealthy, 43
        "at_risk", "unhealthy",  # to become unhealthy, below 37
        "at_risk",  # a healthy account far below the cut-off moves at once
        "healthy",  # no previous tier: the plain cut-offs
    ]
    assert list(tiers.assign_scores(scores, previous, margin=0)) == list(tiers.assign_scores(scores))


def test_a_saved_model_whose_files_were_changed_is_refused(result, tmp_path):
    """Digits edited in the booster, same length: the SHA-256 manifest refuses it, naming the file."""
    folder = result.model.save(tmp_path / "m")
    text = (folder / BOOSTER_FILE).read_text()
    at = text.index("leaf_value=") + len("leaf_value=")
    digit = next(i for i in range(at, len(text)) if text[i].isdigit())
    (folder / BOOSTER_FILE).write_text(text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:])
    with pytest.raises(ModelIntegrityError, match=r"booster\.txt: SHA-256 differs from the model's manifest"):
        HealthModel.load(folder)
    (folder / MANIFEST_FILE).unlink()
    with pytest.raises(ModelIntegrityError, match="no manifest.json"):
        HealthModel.load(folder)
    with pytest.raises(ModelNotFound, match="missing from the saved model"):
        fresh = result.model.save(tmp_path / "n")
        (fresh / MODEL_FILE).unlink()
        HealthModel.load(fresh)
