"""Training artefacts on a synthetic base whose churn drivers are known by construction."""

from __future__ import annotations

import pandas as pd
import pytest
from matplotlib.image import imread

from healthscore.model.artefacts import write_training_artefacts
from healthscore.model.training import LOGISTIC, MODEL, SCORECARD, train
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

FILES = {"scorecard.csv", "scorecard.md", "comparison.csv", "comparison.md", "calibration.png",
         "lift_gain.png", "shap_beeswarm.png", "tier_churn.png", "contenders.csv", "backtest.csv", "backtest.png",
         "model_card.md"}
DIGEST = "feedc0ffee123456"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    config = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=300, early_stopping_rounds=30),
                            split=SplitConfig(test_dates=2, purge=False))
    result = train(synthetic_dataset(), config)
    folder = tmp_path_factory.mktemp("artefacts")
    paths = write_training_artefacts(result, folder, {"digest": DIGEST, "origin": "catalogue", "horizon_days": 90})
    return result, folder, paths


def test_every_file_is_written_and_returned(written):
    _, folder, paths = written
    assert set(paths) == FILES
    for name, path in paths.items():
        assert path == folder / name and path.stat().st_size > 0
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "no temporary files left behind"


@pytest.mark.parametrize("name", sorted(f for f in FILES if f.endswith(".png")))
def test_figures_are_small_valid_images(written, name):
    path = written[2][name]
    image = imread(path)
    height, width = image.shape[:2]
    assert 300 <= width <= 1500 and 300 <= height <= 1500
    assert path.stat().st_size < 200_000
    assert image[..., :3].std() > 0.01, "not a blank canvas"


def test_scorecard_weights_add_up_and_rank_the_true_driver_first(written):
    _, _, paths = written
    scorecard = pd.read_csv(paths["scorecard.csv"])
    assert list(scorecard.columns) == ["rank", "label", "code", "family", "good_direction", "weight_pct"]
    assert scorecard["weight_pct"].sum() == pytest.approx(100, abs=0.1)
    assert scorecard["weight_pct"].is_monotonic_decreasing and list(scorecard["rank"]) == [1, 2, 3]
    assert scorecard.loc[0, "code"] == "usage"
    markdown = paths["scorecard.md"].read_text()
    assert "Active days (30d)" in markdown and "## By family" in markdown and "How to read it" in markdown


def test_comparison_has_the_contenders_as_rows(written):
    result, _, paths = written
    comparison = pd.read_csv(paths["comparison.csv"], index_col="contender")
    assert list(comparison.index) == [MODEL, LOGISTIC, SCORECARD]
    assert comparison.loc[MODEL, "roc_auc"] == pytest.approx(result.comparison.loc[MODEL, "roc_auc"], abs=1e-4)
    assert comparison.loc[MODEL, "rows"] == len(result.test)
    assert "Hand-weighted scorecard" in paths["comparison.md"].read_text()


def test_model_card_states_accuracy_cutoffs_and_data(written):
    result, _, paths = written
    card = paths["model_card.md"].read_text()
    assert f"{result.comparison.loc[MODEL, 'roc_auc']:.3f}" in card
    tiers = result.model.tiers_
    assert f"{tiers.healthy_below:.4f}" in card and f"{tiers.unhealthy_from:.4f}" in card
    assert DIGEST in card and "90 days" in card
    assert f"{result.model.best_iteration_} boosting rounds" in card
    for heading in ("## Model", "## Intended use", "## Data", "## Metrics", "## Health tiers", "## Top learned weights", "## Limits"):
        assert heading in card
