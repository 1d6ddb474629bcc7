"""The whole job through the `healthscore` command, as `make demo` runs it, in a temp project."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from healthscore.cli import app


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    return result


def test_demo_job_end_to_end(project):
    demo = project / "data" / "demo"
    assert run("generate", "--out", str(demo)).exit_code == 0
    built = run("build-dataset", "--config", str(demo / "healthscore.yaml"), "--out", str(demo / "dataset.parquet"))
    assert built.exit_code == 0, built.output
    assert "features written" in built.output

    trained = run("train", "--config", str(demo / "healthscore.yaml"), "--dataset", str(demo / "dataset.parquet"))
    assert trained.exit_code == 0, trained.output
    for text in ("model", "logistic", "scorecard", "oracle", "roc_auc", "Registered"):
        assert text in trained.output
    assert (project / "mlruns" / "mlflow.db").exists() and (project / "models" / "customer-health" / "v1" / "booster.txt").exists()

    promoted = run("promote", "--dataset", str(demo / "dataset.parquet"))
    assert promoted.exit_code == 0 and "promoted" in promoted.output and "no champion yet" in promoted.output

    for as_of in ("2025-12-01", "2026-01-01"):
        scored = run("score", "--config", str(demo / "healthscore.yaml"), "--as-of", as_of,
                     "--out", str(demo / f"scores-{as_of}.parquet"), "--history", str(demo / "scores.duckdb"))
        assert scored.exit_code == 0, scored.output
        assert "Five riskiest accounts" in scored.output and "Drift: score PSI" in scored.output
    scores = pd.read_parquet(demo / "scores-2026-01-01.parquet")
    meta = json.loads((demo / "scores-2026-01-01.meta.json").read_text())
    dataset = pd.read_parquet(demo / "dataset.parquet")
    assert len(scores) == meta["scored_rows"] == (dataset["as_of"] == pd.Timestamp("2026-01-01").date()).sum()
    assert set(scores["model_version"]) == {"1"} and scores["tier"].isin(["healthy", "at_risk", "unhealthy"]).all()

    changes = run("changes", "--from", "2025-12-01", "--to", "2026-01-01", "--db", str(demo / "scores.duckdb"))
    assert changes.exit_code == 0 and "accounts changed from 2025-12-01 to 2026-01-01" in changes.output
    riskiest = scores.nsmallest(1, "health_score")["account_id"].item()
    explained = run("explain", riskiest, "--db", str(demo / "scores.duckdb"))
    assert explained.exit_code == 0 and riskiest in explained.output and "Baseline" in explained.output


def test_bad_invocations_fail_clearly(project):
    missing = run("build-dataset", "--config", str(project / "nope.yaml"), "--out", str(project / "x.parquet"))
    assert missing.exit_code == 2 and "config file not found" in missing.output
    neither = run("score", "--out", str(project / "s.parquet"))
    assert neither.exit_code == 2 and "give --config with --as-of" in neither.output
