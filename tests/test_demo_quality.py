"""The product's claims on the default demo base, checked against the generator's ground truth."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from healthscore import build_dataset, load_config
from healthscore.demo import ORACLE, generate_demo, truth_contender
from healthscore.model.reasons import points
from healthscore.model.training import LOGISTIC, MODEL, train


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    generate_demo(folder, accounts=2000, months=24, start=dt.date(2024, 1, 1), seed=7)  # the default demo
    config = load_config(folder / "healthscore.yaml")
    dataset = build_dataset(config)
    result = train(dataset, config.model, [truth_contender(folder)])
    return folder, dataset, result


def test_model_comes_close_to_the_oracle_and_is_calibrated(demo):
    _, _, result = demo
    table = result.comparison
    print(table[["roc_auc", "pr_auc", "brier", "ece", "top_decile_lift"]].round(4).to_string())
    assert table.loc[MODEL, "roc_auc"] > table.loc[LOGISTIC, "roc_auc"]
    assert 0.80 <= table.loc[ORACLE, "roc_auc"] <= 0.92
    assert table.loc[MODEL, "roc_auc"] >= table.loc[ORACLE, "roc_auc"] - 0.03
    assert table.loc[MODEL, "ece"] <= 0.02
    rates = [table.loc[MODEL, f"churn_rate_{t}"] for t in ("healthy", "at_risk", "unhealthy")]
    assert rates[0] < rates[1] < rates[2]


def test_reason_codes_find_the_real_causes(demo):
    """For unhealthy accounts, the family of reason_1 is among the two largest true drivers."""
    folder, dataset, result = demo
    model = result.model
    test = result.test
    unhealthy = test[model.predict(test) == "unhealthy"]
    pts, _ = points(model, unhealthy)
    family = {f.code: f.family for f in model.features}
    reason_1 = pts.idxmin(axis=1).map(family)
    truth = pd.read_parquet(folder / "ground_truth" / "drivers.parquet")
    truth["as_of"] = pd.to_datetime(truth["as_of"]).dt.date
    top2 = (truth.sort_values("contribution", ascending=False).groupby(["account_id", "as_of"]).head(2)
            .groupby(["account_id", "as_of"])["driver"].apply(set))
    keys = list(zip(unhealthy["account_id"], unhealthy["as_of"]))
    hits = [fam in top2.get(key, set()) for key, fam in zip(keys, reason_1)]
    agreement = sum(hits) / len(hits)
    print(f"reason-code agreement: {agreement:.1%} of {len(hits)} unhealthy account-dates")
    assert len(hits) >= 200
    assert agreement >= 0.80
