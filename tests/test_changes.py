"""`changes`: why a score moved between two runs, attributed exactly with real models.

The attribution is checked against the data: the metrics' points add up to the move, a metric
whose value did not change gets nothing, a metric with a good direction moves the score its way,
and the points are the Shapley values recomputed here by brute force over the changed metrics.
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from healthscore.cli import app
from healthscore.history.changes import LONG_COLUMNS, changes, long_form
from healthscore.history.store import record_run
from healthscore.model.training import train
from healthscore.registry.export import write_export
from healthscore.scores_file import ModelRef
from healthscore.scoring.batch import score_frame
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

CONFIG = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=200, early_stopping_rounds=20),
                        split=SplitConfig(test_dates=2))


@pytest.fixture(scope="module")
def scored(project):
    """Two models exported as customer-health v1 and v2; month 11 scored by v1, month 12 by v1
    (history `same.duckdb`) and by v2 (history `new.duckdb`)."""
    data = synthetic_dataset(accounts=600, months=12, seed=11)
    first = train(data, CONFIG).model
    second = train(data, CONFIG.model_copy(update={"params": CONFIG.params.model_copy(update={"num_leaves": 5, "seed": 3})})).model
    for version, model in (("1", first), ("2", second)):
        write_export(model.save(project / f"saved-{version}"), "customer-health", version, f"run-{version}")
    months = sorted(data.frame["as_of"].unique())[-2:]
    rows = {m: data.frame[data.frame["as_of"] == m].drop(columns="churned").reset_index(drop=True) for m in months}
    for db, later in (("same.duckdb", first), ("new.duckdb", second)):
        for month, model, version in ((months[0], first, "1"), (months[1], later, "1" if later is first else "2")):
            out = project / f"{db}-{month}.parquet"
            run = score_frame(model, ModelRef("customer-health", version, f"run-{version}"), rows[month], out, month)
            record_run(project / db, out, run.metadata, model.features)
    return project, data, first, second, months, rows


def test_points_add_up_to_the_move_and_unchanged_metrics_get_none(scored):
    project, data, model, _, (before, after), rows = scored
    found = changes(project / "same.duckdb", before, after, min_points=0)
    assert len(found) > 300 and not found["model_changed"].any() and (found["model_points"] == 0).all()
    scores = {m: model.score(rows[m]).set_index(rows[m]["account_id"])["health_score"] for m in (before, after)}
    unclipped = scores[before].between(0, 100, inclusive="neither") & scores[after].between(0, 100, inclusive="neither")
    checked = 0
    for row in found.itertuples():
        metrics = json.loads(row.metric_changes)
        total = sum(m["points"] for m in metrics)
        assert math.isclose(row.account_points, row.delta, abs_tol=1e-9)
        if unclipped[row.account_id]:
            assert total == pytest.approx(row.delta, abs=1e-6), row.account_id
            checked += 1
        for m in metrics:
            assert m["value_from"] != m["value_to"]  # only metrics that changed are named
            assert m["code"] != "plan"  # the plan never changes in this base
    assert checked > 300


def test_zero_for_unchanged_values_and_the_good_direction_for_monotone_metrics(scored):
    _, _, model, _, (before, after), rows = scored
    x = rows[after].set_index("account_id")
    r = rows[before].set_index("account_id").loc[x.index]
    r.loc[r.index[::3], "usage"] = x.loc[x.index[::3], "usage"]  # a third keep their usage
    points = model.tiers_.scale.points(model.change_contributions(x, r))
    codes = [f.code for f in model.features]
    usage, tickets, plan = (points[:, codes.index(c)] for c in ("usage", "tickets", "plan"))
    same = (x["usage"] == r["usage"]).to_numpy()
    assert same.sum() > 100 and (usage[same] == 0).all() and (plan == 0).all()
    # more usage is healthier, more tickets less healthy: points never contradict the move
    assert (np.sign(usage) * np.sign((x["usage"] - r["usage"]).to_numpy()) >= 0).all()
    assert (np.sign(tickets) * np.sign((r["tickets"] - x["tickets"]).to_numpy()) >= 0).all()
    assert (np.abs(usage) > 0.5).sum() > 50  # and they say something


def test_points_are_the_brute_force_shapley_values(scored):
    project, _, model, _, (before, after), rows = scored
    found = changes(project / "same.duckdb", before, after, min_points=0).set_index("account_id")
    x_all, r_all = rows[after].set_index("account_id"), rows[before].set_index("account_id")
    codes = [f.code for f in model.features]
    scale = model.tiers_.scale
    for account in found.index[:: max(1, len(found) // 12)]:
        x, r = x_all.loc[[account], codes], r_all.loc[[account], codes]
        changed = [c for c in codes if not x[c].equals(r[c])]

        def value(subset: tuple[str, ...], x=x, r=r) -> float:
            hybrid = r.copy()
            hybrid[list(subset)] = x[list(subset)].to_numpy()
            return float(scale.unclipped(model.log_odds(hybrid))[0])

        n = len(changed)
        expected = {}
        for c in changed:
            others = [o for o in changed if o != c]
            expected[c] = sum(math.factorial(k) * math.factorial(n - k - 1) / math.factorial(n) * (value((*s, c)) - value(s))
                              for k in range(n) for s in itertools.combinations(others, k))
        got = {m["code"]: m["points"] for m in json.loads(found.loc[account, "metric_changes"])}
        assert set(got) == set(changed)
        for c in changed:
            assert got.get(c, 0.0) == pytest.approx(expected[c], abs=1e-9), (account, c)


def test_a_model_change_is_split_from_the_accounts_change(scored):
    project, _, first, second, (before, after), rows = scored
    found = changes(project / "new.duckdb", before, after, min_points=0).set_index("account_id")
    assert found["model_changed"].all() and found["explanation"].str.startswith("new model v1 -> v2: ").all()
    r = rows[before].set_index("account_id").loc[found.index]
    new_before = second.score(r)["health_score"].to_numpy()
    old_before = first.score(r)["health_score"].to_numpy()
    assert np.allclose(found["model_points"], new_before - old_before, atol=1e-9)
    assert np.allclose(found["model_points"] + found["account_points"], found["delta"], atol=1e-9)
    inside = (new_before > 0) & (new_before < 100) & (found["score_to"].between(0, 100, inclusive="neither")).to_numpy()
    totals = found["metric_changes"].map(lambda m: sum(c["points"] for c in json.loads(m)))
    assert np.allclose(totals[inside], found["account_points"][inside], atol=1e-6)


def test_changes_command_writes_the_long_form(scored):
    project, _, _, _, (before, after), _ = scored
    out = project / "changes.parquet"
    result = CliRunner().invoke(app, ["changes", "--from", str(before), "--to", str(after), "--db", str(project / "new.duckdb"),
                                      "--min-points", "5", "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "new model: v1 -> v2" in result.output
    written = pd.read_parquet(out)
    found = changes(project / "new.duckdb", before, after, min_points=5)
    assert list(written.columns) == LONG_COLUMNS
    assert len(written) == sum(len(json.loads(m)) for m in found["metric_changes"]) > 0
    pd.testing.assert_frame_equal(written, long_form(found, before, after).astype(written.dtypes.to_dict()), check_dtype=False)
    bad = CliRunner().invoke(app, ["changes", "--from", str(before), "--to", str(after), "--db", str(project / "new.duckdb"),
                                   "--out", str(project / "changes.txt")])
    assert bad.exit_code == 2 and "--out" in bad.output and not (project / "changes.txt").exists()
