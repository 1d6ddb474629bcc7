"""CSM overrides on a real DuckDB history of the hand-made raw base (rawbase): stored, listed,
expired, shown beside the model's tier in the CSV export, evaluated against the churn the
subscriptions show, and bad input refused with one clear line."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from typer.testing import CliRunner

import rawbase
from healthscore.cli import app
from healthscore.config import load_config
from healthscore.errors import UserError
from healthscore.history.overrides import csm_tiers, evaluate_overrides, list_overrides, reasons, record_override
from healthscore.history.store import record_run
from test_history import FEATURES, account

AS_OF = dt.date(2024, 3, 1)
TODAY = dt.date(2024, 3, 5)
# the model's tier, and the CSM's: A1 and A4 churn within 90 days of AS_OF, A2 and A3 stay
MODEL = {"A1": "unhealthy", "A2": "at_risk", "A3": "healthy", "A4": "healthy"}
CSM = {"A1": "healthy", "A2": "healthy", "A3": "unhealthy", "A4": "at_risk"}


@pytest.fixture()
def history(tmp_path):
    rows = [account(a, tier, [0, 0, 0, 0], [0, 0.5, "pro", 10]) for a, tier in MODEL.items()]
    scores = pd.DataFrame(rows).assign(as_of=AS_OF, model_name="customer-health", model_version="1", model_run_id="r",
                                       scored_at="2024-03-02T00:00:00+00:00")
    path = tmp_path / "scores.parquet"
    scores.to_parquet(path, index=False)
    db = tmp_path / "scores.duckdb"
    record_run(db, path, {}, FEATURES)
    return db


def test_overrides_stored_listed_and_expired(history):
    assert list_overrides(history).empty and csm_tiers(history).empty  # a history that has none yet
    first = record_override(history, "A2", "healthy", "renewal_signed", "Kim", note="signed for 2 years", today=TODAY)
    assert first["model_tier"] == "at_risk" and first["as_of"] == AS_OF
    assert first["until"] == TODAY + dt.timedelta(days=90)
    record_override(history, "A3", "unhealthy", "champion_left", "Lee", until="2024-03-20", today=TODAY)
    later = record_override(history, "A2", "unhealthy", "competitor", "Kim", until="2024-06-01", today=TODAY)
    found = list_overrides(history, today=dt.date(2024, 4, 1))
    assert list(found["override_id"]) == [later["override_id"], 2, 1]
    assert found.set_index("override_id")["expired"].to_dict() == {3: False, 2: True, 1: False}
    assert found.loc[found["override_id"] == 1, "note"].item() == "signed for 2 years"
    shown = csm_tiers(history, today=dt.date(2024, 4, 1))
    assert shown.loc["A2", "csm_tier"] == "unhealthy" and shown.loc["A2", "csm_reason"] == "competitor"  # the latest counts
    assert bool(shown.loc["A3", "csm_expired"]) and not bool(shown.loc["A2", "csm_expired"])
    assert "A1" not in shown.index


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"account_id": "NOPE"}, "account 'NOPE': never scored"),
    ({"tier": "red"}, "--tier 'red': not a tier"),
    ({"reason": "vibes"}, "--reason 'vibes': not a known reason code"),
    ({"until": "2024-03-01"}, "--until 2024-03-01: the date is not after today"),
    ({"until": "03/01/2025"}, "not a date"),
    ({"by": " "}, "--by"),
    ({"tier": "at_risk"}, "already puts it in at_risk"),
])
def test_bad_overrides_rejected(history, kwargs, message):
    args = {"account_id": "A2", "tier": "healthy", "reason": "other", "by": "Kim"} | kwargs
    with pytest.raises(UserError, match=message):
        record_override(history, today=TODAY, **args)
    assert list_overrides(history).empty


def test_evaluate_who_was_right(history, tmp_path):
    config = load_config(rawbase.write(tmp_path / "raw"))
    for account_id, tier in CSM.items():
        record_override(history, account_id, tier, "other", "Kim", today=TODAY)
    found, summary = evaluate_overrides(history, config, today=TODAY)
    subs = rawbase.tables()["subscriptions"]
    end = pd.Series(subs.groupby("account_id")["end_date"].last())
    churned = {a: pd.notna(end[a]) and AS_OF <= end[a] < AS_OF + dt.timedelta(days=90) for a in MODEL}
    assert churned == {"A1": True, "A2": False, "A3": False, "A4": True}
    risk = {"healthy": 0, "at_risk": 1, "unhealthy": 2}
    for row in found.itertuples():
        assert bool(row.churned) == churned[row.account_id]
        riskier = "model" if risk[MODEL[row.account_id]] > risk[CSM[row.account_id]] else "csm"
        assert row.right == (riskier if churned[row.account_id] else {"model": "csm", "csm": "model"}[riskier])
    for side, tiers in (("model", MODEL), ("csm", CSM)):
        for tier in risk:
            mine = [a for a, t in tiers.items() if t == tier]
            row = summary[(summary["by"] == side) & (summary["tier"] == tier)].iloc[0]
            assert row.accounts == len(mine) and row.churned == sum(churned[a] for a in mine)
    # an outcome not yet known stays pending
    pending = tmp_path / "late"
    cfg = rawbase.config_dict() | {"data_end": "2024-04-01"}
    found, _ = evaluate_overrides(history, load_config(rawbase.write(pending, config=cfg)), today=TODAY)
    assert found["churned"].isna().all() and found["right"].isna().all()


def test_override_commands(history, tmp_path):
    runner = CliRunner(env={"COLUMNS": "200"})
    ok = runner.invoke(app, ["override", "A1", "--tier", "healthy", "--reason", "relationship_strong", "--by", "Kim",
                             "--until", "2999-01-01", "--db", str(history)])
    assert ok.exit_code == 0, ok.output
    assert "Override 1 recorded" in ok.output
    listed = runner.invoke(app, ["overrides", "--db", str(history)])
    assert listed.exit_code == 0 and "A1" in listed.output and "relationship_strong" in listed.output
    past = runner.invoke(app, ["override", "A2", "--tier", "healthy", "--reason", "other", "--by", "Kim",
                               "--until", "2000-01-01", "--db", str(history)])
    assert past.exit_code == 2 and "--until 2000-01-01" in past.output and "Traceback" not in past.output
    unknown = runner.invoke(app, ["override", "ZZ", "--tier", "healthy", "--reason", "other", "--by", "Kim", "--db", str(history)])
    assert unknown.exit_code == 2 and "never scored" in unknown.output
    no_config = runner.invoke(app, ["overrides", "--evaluate", "--db", str(history)])
    assert no_config.exit_code == 2 and "--evaluate needs --config" in no_config.output
    codes = runner.invoke(app, ["overrides", "--reasons"])
    assert set(reasons()) <= set(line.split(":")[0] for line in codes.output.splitlines())
    evaluated = runner.invoke(app, ["overrides", "--evaluate", "--db", str(history), "--config", str(rawbase.write(tmp_path / "raw"))])
    assert evaluated.exit_code == 0, evaluated.output
    assert "1 of 1 overrides judged: the model was right on 1" in " ".join(evaluated.output.split())
