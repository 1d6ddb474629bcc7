"""The score history on small hand-made scores files in a real DuckDB file: replace-on-rerecord,
model versions kept apart, atomic ingest, changes between dates with their explanations,
one account's history, CSV input and the two CLI commands."""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from healthscore.cli.history import changes_cmd, explain_cmd
from healthscore.dataset import FeatureSpec
from healthscore.errors import ModelNotFound
from healthscore.history.changes import account_history, changes
from healthscore.history.store import record_run

D1, D2 = dt.date(2025, 1, 1), dt.date(2025, 2, 1)
FEATURES = [
    FeatureSpec(code="escalations_90d", label="Support escalations (90 days)", format="integer", good_direction="lower"),
    FeatureSpec(code="licence_utilisation", label="Licence utilisation", format="percent", good_direction="higher"),
    FeatureSpec(code="plan", label="Plan", kind="categorical"),
    FeatureSpec(code="nps_365d", label="NPS (365 days)", format="score", missing_text="no NPS response in the last year"),
]
COLORS = {"healthy": "green", "at_risk": "yellow", "unhealthy": "red"}
BASELINE = 50.0


def account(account_id: str, tier: str, points: list[float], values: list) -> dict:
    """A scores-file row whose score is the baseline plus its points (escalations, licence, plan, NPS)."""
    codes = [f.code for f in FEATURES]
    score = BASELINE + sum(points)
    worst = min(range(len(points)), key=points.__getitem__)
    row = {"account_id": account_id, "churn_probability": round(1 - score / 100, 3), "health_score": score,
           "health_percentile": score, "tier": tier, "tier_color": COLORS[tier]}
    for side in ("reason", "strength"):
        for k in (1, 2, 3):
            first = side == "reason" and k == 1
            row[f"{side}_{k}_code"] = codes[worst].upper() if first else None
            row[f"{side}_{k}_text"] = f"{FEATURES[worst].label}: {points[worst]:+.0f} points" if first else None
            row[f"{side}_{k}_points"] = points[worst] if first else float("nan")
    row["baseline_score"] = BASELINE
    row["contributions"] = json.dumps(dict(zip(codes, points)))
    row["metric_values"] = json.dumps(dict(zip(codes, values)))
    return row


DAY1 = [
    account("a1", "healthy", [2, 20, 3, 5], [0, 0.8, "pro", 40]),
    account("a2", "at_risk", [0, 5, 3, 2], [1, 0.6, "pro", 20]),
    account("a3", "at_risk", [0, 3, 2, 0], [0, 0.4, "basic", None]),
    account("a4", "unhealthy", [0, -10, 0, 0], [2, 0.2, "basic", 0]),
    account("a5", "unhealthy", [-10, -10, 0, 0], [5, 0.1, "basic", 0]),
]
DAY2 = [
    account("a1", "at_risk", [-7, 13, 3, 5], [4, 0.34, "pro", 40]),  # tier change, -16
    account("a2", "at_risk", [0, 5, 3, 2], [1, 0.6, "pro", 20]),  # unchanged
    account("a3", "at_risk", [0, 3, 2, 0], [0, 0.4, "basic", None]),  # unchanged under model 1 ...
    account("a4", "unhealthy", [0, -4, 0, 0], [2, 0.3, "basic", 0]),  # +6: below the default 10 points
    account("a6", "healthy", [5, 20, 3, 5], [0, 0.9, "pro", 50]),  # new at day 2
]
DAY2_MODEL2 = [account("a3", "at_risk", [1, 14, 2, 3], [0, 0.7, "basic", 30])]  # ... +15 under model 2


def write_scores(path, as_of: dt.date, rows: list[dict], version: str = "1", scored_at: str | None = None):
    frame = pd.DataFrame(rows)
    frame.insert(1, "as_of", as_of)
    frame["model_name"], frame["model_version"], frame["model_run_id"] = "customer-health", version, f"run-{version}"
    frame["scored_at"] = scored_at or f"{as_of}T06:00:00+00:00"
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def meta(as_of: dt.date, version: str = "1") -> dict:
    return {"model": {"name": "customer-health", "version": version}, "as_of": str(as_of), "rejected_rows": 0}


def count(db, sql: str = "SELECT count(*) FROM scores", params=()):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, list(params)).fetchone()[0]


@pytest.fixture
def db(tmp_path):
    """Two days under model 1, and day 2 rescored later for one account by model 2."""
    path = tmp_path / "scores.duckdb"
    record_run(path, write_scores(tmp_path / "d1.parquet", D1, DAY1), meta(D1), FEATURES)
    record_run(path, write_scores(tmp_path / "d2.parquet", D2, DAY2), meta(D2) | {"drift": {"score_psi": 0.02}}, FEATURES)
    record_run(path, write_scores(tmp_path / "d2v2.parquet", D2, DAY2_MODEL2, "2", f"{D2}T09:00:00+00:00"), meta(D2, "2"), FEATURES)
    return path


def test_record_replaces_same_run_and_keeps_model_versions_apart(tmp_path, db):
    assert count(db) == 5 + 5 + 1
    assert count(db, "SELECT count(*) FROM scores WHERE as_of = ? AND account_id = 'a3'", [D2]) == 2  # one per model
    assert count(db, "SELECT count(*) FROM runs") == 3
    assert count(db, "SELECT count(*) FROM model_features WHERE model_version = '2'") == len(FEATURES)
    assert count(db, "SELECT drift->>'score_psi' FROM runs WHERE as_of = ? AND model_version = '1'", [D2]) == "0.02"

    again = [account("a1", "healthy", [2, 20, 1, 5], [0, 0.8, "basic", 40])] + DAY1[1:]
    n = record_run(db, write_scores(tmp_path / "d1b.parquet", D1, again, scored_at=f"{D1}T07:00:00+00:00"), meta(D1), FEATURES)
    assert n == 5
    assert count(db) == 11 and count(db, "SELECT count(*) FROM runs") == 3
    assert count(db, "SELECT health_score FROM scores WHERE account_id = 'a1' AND as_of = ?", [D1]) == 78
    assert count(db, "SELECT healthy FROM runs WHERE as_of = ?", [D1]) == 1


def test_failed_ingest_leaves_the_history_as_it_was(tmp_path, db):
    changed = [account("a1", "at_risk", [0, 0, 0, 0], [0, 0.8, "pro", 40])] + DAY1[1:]
    path = write_scores(tmp_path / "bad.parquet", D1, changed)
    with pytest.raises(duckdb.ConstraintException):  # fails after the old rows were deleted
        record_run(db, path, meta(D1), [FEATURES[0], FEATURES[0]])
    assert count(db) == 11
    assert count(db, "SELECT health_score FROM scores WHERE account_id = 'a1' AND as_of = ?", [D1]) == 80

    dupes = write_scores(tmp_path / "dupes.parquet", D1, DAY1 + DAY1[:1])
    with pytest.raises(ValueError, match="more than once.*a1 at 2025-01-01"):
        record_run(db, dupes, meta(D1), FEATURES)
    fresh = tmp_path / "new.duckdb"
    pd.DataFrame({"account_id": ["a1"]}).to_parquet(tmp_path / "thin.parquet")
    with pytest.raises(ValueError, match="missing columns as_of, churn_probability"):
        record_run(fresh, tmp_path / "thin.parquet", {}, FEATURES)
    assert not fresh.exists()


def unavailable(name: str, version: str):
    raise ModelNotFound(f"no export or registry entry for {name} v{version}")


def test_changes_between_dates(db):
    """Which accounts moved, in which order, across tiers and models; the metrics' points come from
    the model (tests/test_changes.py), here one that can no longer be loaded."""
    found = changes(db, "2025-01-01", D2, models=unavailable)
    assert found["account_id"].tolist() == ["a1", "a3"]  # biggest drop first; a2 unchanged, a4 below 10 points
    a1, a3 = found.to_dict("records")
    assert (a1["score_from"], a1["score_to"], a1["delta"]) == (80, 64, -16)
    assert (a1["tier_from"], a1["tier_to"], a1["model_changed"]) == ("healthy", "at_risk", False)
    assert (a3["delta"], a3["model_from"], a3["model_to"], a3["model_changed"]) == (15, "1", "2", True)
    assert a1["explanation"] == "not attributed: model customer-health v1 cannot be loaded (no export or registry entry for customer-health v1)"
    assert json.loads(a1["metric_changes"]) == []

    assert changes(db, D1, D2, min_points=5, models=unavailable)["account_id"].tolist() == ["a1", "a4", "a3"]
    assert changes(db, D1, D2, min_points=20, models=unavailable)["account_id"].tolist() == ["a1"]  # a tier change counts at any size
    assert changes(db, D2, D2, models=unavailable).empty


def test_clear_errors(db, tmp_path):
    with pytest.raises(ValueError, match=r"scores.duckdb: no scores recorded for 2024-12-01; .*2025-01-01, 2025-02-01"):
        changes(db, "2024-12-01", D2)
    with pytest.raises(ValueError, match="not a date: '1 Jan'"):
        changes(db, "1 Jan", D2)
    with pytest.raises(ValueError, match="no score history at"):
        changes(tmp_path / "missing.duckdb", D1, D2)
    with pytest.raises(ValueError, match="no scores recorded for account 'zz'"):
        account_history(db, "zz")
    with pytest.raises(ValueError, match="'a5' has no score for 2025-02-01; it has scores for 2025-01-01"):
        account_history(db, "a5", D2)


def test_account_history(db):
    found = account_history(db, "a3")
    assert found["as_of"] == D2 and found["score"]["model_version"] == "2"  # latest run of the latest date
    assert found["score"]["scored_at"] == "2025-02-01T09:00:00+00:00"
    assert [(h["as_of"], h["health_score"], h["model_version"]) for h in found["history"]] == [(D1, 55, "1"), (D2, 70, "2")]
    assert [c["points"] for c in found["contributions"]] == [1, 2, 3, 14]
    assert found["contributions"][-1] | {"label": "Licence utilisation", "value_text": "70%"} == found["contributions"][-1]
    before = account_history(db, "a3", "2025-01-01")
    nps = next(c for c in before["contributions"] if c["code"] == "nps_365d")
    assert (nps["value"], nps["value_text"]) == (None, "no NPS response in the last year")


def test_csv_scores_are_ingested(tmp_path):
    path = tmp_path / "scores.duckdb"
    rows = [account("007", "healthy", [2, 20, 3, 5], [0, 0.8, "pro, annual", 40]), DAY1[2]]
    assert record_run(path, write_scores(tmp_path / "d1.csv", D1, rows), meta(D1), FEATURES) == 2
    record_run(path, write_scores(tmp_path / "d2.csv", D2, [account("007", "at_risk", [-7, 13, 3, 5], [4, 0.34, "pro, annual", 40])]),
               meta(D2), FEATURES)
    found = account_history(path, "007")  # leading zeros kept: ids are text
    assert [h["tier"] for h in found["history"]] == ["healthy", "at_risk"]
    assert found["score"]["metric_values"]["plan"] == "pro, annual"
    assert count(path, "SELECT count(*) FROM scores WHERE reason_2_points IS NULL") == 3
    moved = changes(path, D1, D2, models=unavailable)
    assert moved["account_id"].tolist() == ["007"] and moved["delta"].iloc[0] == -16


def test_cli_commands(db, project):
    app = typer.Typer()
    app.command("changes")(changes_cmd)
    app.command("explain")(explain_cmd)
    runner = CliRunner()
    env = {"COLUMNS": "200"}

    result = runner.invoke(app, ["changes", "--from", "2025-01-01", "--to", "2025-02-01", "--db", str(db)], env=env)
    assert result.exit_code == 0, result.output
    assert "a1" in result.output and "a3" in result.output and "a2" not in result.output
    assert "new model: v1 -> v2" in result.output and "healthy -> at risk" in result.output
    assert "1 moved down, 1 moved up, 1 changed tier" in result.output
    assert "not attributed: model customer-health v1 cannot be loaded" in result.output

    result = runner.invoke(app, ["explain", "a3", "--db", str(db)], env=env)
    assert result.exit_code == 0, result.output
    assert "health score 70" in result.output and "Licence utilisation" in result.output and "2025-01-01" in result.output

    result = runner.invoke(app, ["changes", "--from", "2024-12-01", "--to", "2025-02-01", "--db", str(db)], env=env)
    assert result.exit_code == 2 and "error:" in result.output and "2024-12-01" in result.output
    result = runner.invoke(app, ["explain", "nobody", "--db", str(db)], env=env)
    assert result.exit_code == 2 and "no scores recorded for account 'nobody'" in result.output
