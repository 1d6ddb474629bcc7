"""`healthscore init` on bases shaped unlike the demo: init + build-dataset + train with the
generated config and no hand edits, labels checked against the generator's truth."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import shapes
from healthscore import load_config, read_dataset
from healthscore.cli import app

SHAPES = {"b2c": lambda: shapes.b2c(n=350), "api": lambda: shapes.api(n=320), "billing": lambda: shapes.billing(n=320)}


def run(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("name", list(SHAPES))
def test_init_build_and_train_with_no_hand_edits(project, name):
    shape = SHAPES[name]()
    folder = project / name
    paths = shape.write(folder)
    config_path = folder / "healthscore.yaml"
    made = run("init", "--accounts", paths["accounts"], "--subscriptions", paths["subscriptions"],
               "--events", paths["events"], "--out", config_path)
    assert made.exit_code == 0, made.output
    written = yaml.safe_load(config_path.read_text())
    event_types = set(shape.tables["events"].iloc[:, 2])
    assert set(sum(written["sources"]["events"]["event_kinds"].values(), [])) == event_types  # every type, under a kind

    built = run("build-dataset", "--config", config_path, "--out", folder / "dataset.parquet")
    assert built.exit_code == 0, built.output
    dataset = read_dataset(folder / "dataset.parquet")
    config = load_config(config_path)
    frame = dataset.frame
    truth = shapes.expected_labels(shape, frame, config.horizon.end)
    labelled = frame["churned"].notna()
    # every label the build gives is the truth; none where the window passes what the export shows,
    # and every window that ends a week or more before it is labelled
    assert labelled.sum() > 1000
    pd.testing.assert_series_equal(frame.loc[labelled, "churned"], truth[labelled], check_names=False)
    ends = frame["as_of"].map(config.horizon.end)
    assert not labelled[ends > shape.knowable_end].any()
    assert labelled[ends <= shape.knowable_end - dt.timedelta(days=7)].all()
    coverage = pd.read_csv(folder / "dataset.coverage.csv")
    assert set(coverage["metric"]) == set(dataset.spec.feature_codes)
    assert (coverage["non_zero_share"] > 0).all()  # a metric that measures nothing is not in the dataset

    trained = run("train", "--config", config_path, "--dataset", folder / "dataset.parquet")
    assert trained.exit_code in (0, 1), trained.output  # 1: a model the quality gate rejected, logged as such
    assert "roc_auc" in trained.output and ("Registered" in trained.output or "model rejected" in trained.output)


def test_b2c_vocabulary_and_extra_account_columns(tmp_path):
    """The user's event names become metrics in their words; their extra account columns, features."""
    shape = shapes.b2c(n=150, days=150)
    paths = shape.write(tmp_path)
    assert run("init", "--accounts", paths["accounts"], "--subscriptions", paths["subscriptions"],
               "--events", paths["events"], "--out", tmp_path / "h.yaml").exit_code == 0
    catalogue = load_config(tmp_path / "h.yaml").catalogue()
    labels = {m.code: m.label for m in catalogue}
    assert labels["post_30d"] == "Post (30 days)" and labels["account_age"] == "Age"
    assert "logins_30d" in labels  # app_open is the sign-in of this app
    assert "session_minutes_30d" not in labels  # no duration event: the metric does not apply


def test_subscriptions_ending_before_the_events_move_data_end(tmp_path):
    shape = shapes.billing(n=200, days=400)
    paths = shape.write(tmp_path)
    made = run("init", "--accounts", paths["accounts"], "--subscriptions", paths["subscriptions"],
               "--events", paths["events"], "--out", tmp_path / "h.yaml")
    assert made.exit_code == 0, made.output
    config = load_config(tmp_path / "h.yaml")
    assert config.data_end == shape.knowable_end < shape.events_end
    assert "data_end" in made.output and "latest start" in made.output


def test_init_says_what_it_could_not_decide(tmp_path):
    shape = shapes.api(n=60, days=200)
    shape.tables["subscriptions"] = shape.tables["subscriptions"].rename(columns={"end_date": "xyz"})
    paths = shape.write(tmp_path)
    made = run("init", "--accounts", paths["accounts"], "--subscriptions", paths["subscriptions"],
               "--events", paths["events"], "--out", tmp_path / "h.yaml")
    assert made.exit_code == 1
    assert "not decided" in made.output and "subscriptions.end_date" in made.output
