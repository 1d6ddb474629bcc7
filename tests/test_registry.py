"""Training runs and models in a real MLflow store (sqlite + local artifacts) in a temp folder."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pytest

from healthscore import registry
from healthscore.model.artefacts import write_training_artefacts
from healthscore.model.training import train
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

CONFIG = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20),
                        split=SplitConfig(test_dates=2))


@pytest.fixture(scope="module")
def store(project):
    """The project folder and a function that trains and registers a model in its store."""

    def train_and_register(dataset):
        result = train(dataset, CONFIG)
        artefacts = project / f"artefacts-{len(list(project.glob('artefacts-*')))}"
        write_training_artefacts(result, artefacts)
        return result, registry.log_training(result, dataset, artefacts)

    return project, train_and_register


def test_training_run_is_logged_registered_and_loadable(store):
    folder, train_and_register = store
    data = synthetic_dataset(accounts=800, months=12)
    result, model = train_and_register(data)
    assert (folder / "mlruns" / "mlflow.db").exists()
    run = mlflow.get_run(model.run_id)
    assert run.data.params["dataset.digest"] == result.dataset_digest
    assert float(run.data.params["params.learning_rate"]) == 0.1
    assert run.data.metrics["health_model.roc_auc"] == pytest.approx(result.comparison.loc["health_model", "roc_auc"])
    assert {"logistic_regression.brier", "hand_weighted_scorecard.ece", "split.test.churn_rate"} <= set(run.data.metrics)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(model.run_id, "report")}
    assert {"report/scorecard.csv", "report/model_card.md", "report/calibration.png"} <= artifacts

    loaded = mlflow.pyfunc.load_model("models:/customer-health@challenger")
    scores = loaded.predict(data.frame.head(20))
    assert {"account_id", "churn_probability", "health_score", "health_percentile", "tier"} <= set(scores.columns)
    assert set(scores["model_version"]) == {model.version} and set(scores["model_run_id"]) == {model.run_id}
    assert list(scores["account_id"]) == list(data.frame["account_id"].head(20))
    np.testing.assert_allclose(scores["churn_probability"], result.model.predict_proba(data.frame.head(20))[:, 1])
    assert loaded.metadata.signature is not None

    # the batch-job copy: same files, no pickles
    export = folder / model.export_path
    assert {p.name for p in export.iterdir()} == {"booster.txt", "model.json", "manifest.json", "registration.json", "report"}
    assert json.loads((export.parent / "challenger.json").read_text())["version"] == model.version
    assert not list(folder.joinpath("mlruns").rglob("*.pkl"))


def test_promotion_moves_champion_only_to_a_model_that_is_not_worse(store):
    """Both models are judged on the labelled dates after their training data, never on rows either learned from."""
    import datetime as dt

    from healthscore import Dataset

    _, train_and_register = store
    data = synthetic_dataset(accounts=800, months=15)
    until = dt.date(2023, 12, 1)
    history = Dataset(data.frame[data.frame["as_of"] <= until], data.spec)
    _, first = train_and_register(history)
    outcome = registry.promote(data)
    assert outcome.promoted and outcome.reason == "no champion yet"
    assert str(mlflow.MlflowClient().get_model_version_by_alias("customer-health", "champion").version) == first.version

    noisy = Dataset(history.frame.copy(), history.spec)
    rng = np.random.default_rng(1)
    noisy.frame["churned"] = noisy.frame["churned"].to_numpy()[rng.permutation(len(noisy.frame))]  # labels destroyed
    _, worse = train_and_register(noisy)
    outcome = registry.promote(data)
    assert not outcome.promoted and "worse" in outcome.reason
    assert outcome.dates == [dt.date(2024, 1, 1), dt.date(2024, 2, 1), dt.date(2024, 3, 1)] and outcome.rows == 3 * 800
    assert outcome.auc_difference["high"] < 0  # the destroyed labels cost ROC-AUC beyond the bootstrap interval
    assert list(outcome.comparison.index) == [f"challenger (v{worse.version})", f"champion (v{first.version})"]
    assert str(mlflow.MlflowClient().get_model_version_by_alias("customer-health", "champion").version) == first.version

    forced = registry.promote(data, force=True)
    assert forced.promoted and "--force" in forced.reason
    assert str(mlflow.MlflowClient().get_model_version_by_alias("customer-health", "champion").version) == worse.version

    # no labelled date after the models' training data: nothing to judge on, only --force promotes
    train_and_register(history)
    blind = registry.promote(history)
    assert not blind.promoted and blind.rows == 0 and "no labelled data after 2023-12-01" in blind.reason
    assert blind.comparison.empty


def test_registered_model_is_served_over_rest_with_reasons(store):
    """`mlflow models serve` on localhost answers scoring requests with the `score` columns."""
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from pathlib import Path

    folder, train_and_register = store
    data = synthetic_dataset(accounts=800, months=12)
    train_and_register(data)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = os.environ | {"MLFLOW_TRACKING_URI": registry.tracking_uri(),
                        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/customer-health@challenger",
                               "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port)],
                              cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the model server did not start: {server.stderr.read()[-2000:] if server.poll() is not None else 'timeout'}")
            time.sleep(0.5)
        rows = data.frame[["account_id"] + data.spec.feature_codes].head(4)
        body = json.dumps({"dataframe_split": json.loads(rows.to_json(orient="split", index=False))}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())["predictions"]
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert [a["account_id"] for a in answer] == list(rows["account_id"])
    expected = mlflow.pyfunc.load_model("models:/customer-health@challenger").predict(rows)
    np.testing.assert_allclose([a["health_score"] for a in answer], expected["health_score"])
    assert {"reason_1_code", "reason_1_text", "strength_1_text", "contributions", "tier", "tier_color", "model_run_id"} <= set(answer[0])
    challenger = mlflow.MlflowClient().get_model_version_by_alias("customer-health", "challenger")
    assert {(a["model_version"], a["model_run_id"]) for a in answer} == {(str(challenger.version), challenger.run_id)}


def test_a_model_that_fails_the_quality_gate_is_never_registered(store):
    """The gate runs before registration: a rejected model is a logged run with no version, so
    no alias points at it and `promote` cannot make it champion."""
    from healthscore import Dataset, promote, train_and_register
    from healthscore.errors import ModelNotFound

    data = synthetic_dataset(accounts=800, months=12, seed=5)
    # usage lowers churn, but the spec says the opposite: the monotone model cannot use it, a logistic regression can
    wrong = [f.model_copy(update={"good_direction": "lower"}) if f.code == "usage" else f for f in data.spec.features]
    data = Dataset(data.frame, data.spec.model_copy(update={"features": wrong}))
    outcome = train_and_register(data, CONFIG, name="gate-test")

    assert not outcome.passed and outcome.registered is None
    assert "below the logistic regression" in outcome.rejection
    client = mlflow.MlflowClient()
    run = client.get_run(outcome.rejected_run_id)
    assert run.data.tags["healthscore.gate"] == "rejected" and "logistic" in run.data.tags["healthscore.gate_reason"]
    assert "health_model.roc_auc" in run.data.metrics  # its figures are on record
    assert client.search_model_versions("name = 'gate-test'") == []
    with pytest.raises(ModelNotFound, match="no 'challenger' version"):
        promote(data, name="gate-test")
