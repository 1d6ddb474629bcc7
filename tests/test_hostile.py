"""Hostile and careless input across the commands: nothing reads or writes what it should not,
nothing destroys the user's data, and every error is one line with exit code 2 (never a
traceback). Metric SQL injection is covered in tests/test_sql_expressions.py and the config tests;
tampered models in tests/test_model.py."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from typer.testing import CliRunner

from healthscore.cli import app
from healthscore.dataset import Dataset
from healthscore.model.training import train
from healthscore.registry.export import point_alias, write_export
from healthscore.settings import ModelParams, SplitConfig, TrainingConfig
from synthetic import synthetic_dataset

CONFIG = TrainingConfig(params=ModelParams(learning_rate=0.1, max_rounds=150, early_stopping_rounds=20),
                        split=SplitConfig(test_dates=2))


def run(*args):
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})
    assert "Traceback" not in result.output, result.output
    return result


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def base(project):
    """An exported champion model and a features file of the latest month to score."""
    data = synthetic_dataset(accounts=400, months=12, seed=21)
    model = train(data, CONFIG).model
    write_export(model.save(project / "saved"), "customer-health", "1", "run-1")
    point_alias("customer-health", "champion", "1")
    latest = data.frame[data.frame["as_of"] == data.frame["as_of"].max()].drop(columns="churned")
    features = Dataset(latest.reset_index(drop=True), data.spec).write(project / "features.parquet")
    return project, features, latest


def score(base, out, *extra):
    project, features, _ = base
    return run("score", "--table", features, "--model", project / "models" / "customer-health", "--out", out,
               "--history", project / "scores.duckdb", *extra)


def test_an_output_never_replaces_an_input(base, tmp_path):
    project, features, _ = base
    before = digest(features)
    result = score(base, features)
    assert result.exit_code == 2 and "is an input of this run" in result.output and digest(features) == before
    table = tmp_path / "data.csv"
    pd.DataFrame({"id": ["a", "b"], "churned": ["yes", "no"], "x": [1, 2]}).to_csv(table, index=False)
    before = digest(table)
    result = run("build-dataset", "--table", table, "--id-column", "id", "--label-column", "churned", "--out", table)
    assert result.exit_code == 2 and "--out" in result.output and digest(table) == before


def test_outputs_are_refused_before_any_work(base, tmp_path):
    result = score(base, tmp_path / "scores.xlsx")
    assert result.exit_code == 2 and "must end in .csv or .parquet" in result.output and list(tmp_path.iterdir()) == []
    blocked = tmp_path / "a-file.txt"
    blocked.write_text("a file where a folder would have to be")
    result = score(base, blocked / "scores.parquet")
    assert result.exit_code == 2 and "cannot write in" in result.output


def test_the_history_must_be_a_score_history(base, tmp_path):
    project, features, _ = base
    out = tmp_path / "scores.parquet"
    result = run("score", "--table", features, "--model", project / "models" / "customer-health", "--out", out,
                 "--history", tmp_path / "history.parquet")
    assert result.exit_code == 2 and "a score history is a DuckDB file" in result.output and not out.exists()
    import duckdb

    other = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE invoices AS SELECT 1 AS id")
    result = run("score", "--table", features, "--model", project / "models" / "customer-health", "--out", out, "--history", other)
    assert result.exit_code == 2 and "not a score history (its tables: invoices)" in result.output and not out.exists()
    text = tmp_path / "notes.duckdb"
    text.write_text("not a database")
    result = run("changes", "--from", "2024-01-01", "--to", "2024-02-01", "--db", text)
    assert result.exit_code == 2 and "notes.duckdb" in result.output


def test_a_history_held_by_another_process_stops_the_run_before_any_output(base, tmp_path, monkeypatch):
    project, _, _ = base
    db = tmp_path / "held.duckdb"
    assert score(base, tmp_path / "first.parquet", "--history", db).exit_code == 0
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys, time
        con = duckdb.connect({str(db)!r})
        print("holding", flush=True)
        time.sleep(30)""")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        monkeypatch.setattr("healthscore.history.store.LOCK_WAIT", 1.0)
        out = tmp_path / "second.parquet"
        result = score(base, out, "--history", db)
        assert result.exit_code == 2 and "locked by another process" in result.output
        assert not out.exists() and not out.with_name("second.meta.json").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_tampered_export_is_refused(base, tmp_path):
    project, features, _ = base
    state = project / "models" / "customer-health" / "v1" / "model.json"  # every family has one (a booster too for trees)
    original = state.read_text()
    state.write_text(original.replace('"rows": ', '"rows":  ', 1))  # still valid JSON, same model, other bytes
    try:
        result = score(base, tmp_path / "scores.parquet")
        assert result.exit_code == 2 and "model.json: SHA-256 differs" in result.output
        assert not (tmp_path / "scores.parquet").exists()
    finally:
        state.write_text(original)


def test_unseen_categories_are_counted_and_said(base, tmp_path):
    project, _, latest = base
    odd = latest.copy()
    odd.loc[odd.index[:7], "plan"] = "platinum"
    features = Dataset(odd.reset_index(drop=True), synthetic_dataset(accounts=10, months=2).spec).write(tmp_path / "odd.parquet")
    out = tmp_path / "scores.parquet"
    result = run("score", "--table", features, "--model", project / "models" / "customer-health", "--out", out,
                 "--history", tmp_path / "h.duckdb")
    assert result.exit_code == 0, result.output
    assert "plan: values not seen in training, read as missing: 'platinum' (7)" in result.output
    import json

    assert json.loads(out.with_name("scores.meta.json").read_text())["unseen_categories"] == {"plan": {"platinum": 7}}
    scores = pd.read_parquet(out).set_index("account_id")
    texts = pd.concat([scores[f"{side}_{k}_text"] for side in ("reason", "strength") for k in (1, 2, 3)])
    codes = pd.concat([scores[f"{side}_{k}_code"] for side in ("reason", "strength") for k in (1, 2, 3)])
    assert not codes.str.contains("PLATINUM", na=False).any()
    named = texts[texts.str.startswith("Plan: platinum", na=False)]
    assert named.str.contains("new value, not seen in training").all()


def test_a_killed_runs_temporary_files_are_removed_by_the_next_run(base, tmp_path):
    out = tmp_path / "scores.parquet"
    dead = tmp_path / f".{out.name}.999999999.abc123.tmp"  # no process has that id
    alive = tmp_path / f".{out.name}.{os.getpid()}.def456.tmp"  # a run still writing
    dead.write_text("half a file")
    alive.write_text("being written")
    assert score(base, out, "--history", tmp_path / "h.duckdb").exit_code == 0
    assert not dead.exists() and alive.exists() and out.exists()


def test_formula_characters_in_ids_are_defused_in_the_crm_export(base, tmp_path):
    project, _, latest = base
    evil = latest.copy()
    evil.loc[evil.index[0], "account_id"] = '=HYPERLINK("http://example.invalid","click")'
    evil.loc[evil.index[1], "account_id"] = "-1234"  # a signed number stays a number
    features = Dataset(evil.reset_index(drop=True), synthetic_dataset(accounts=10, months=2).spec).write(tmp_path / "evil.parquet")
    out = tmp_path / "scores.parquet"
    assert run("score", "--table", features, "--model", project / "models" / "customer-health", "--out", out,
               "--history", tmp_path / "h.duckdb").exit_code == 0
    csv = tmp_path / "accounts.csv"
    assert run("report", "--scores", out, "--out", tmp_path / "report.html", "--csv", csv).exit_code == 0
    ids = pd.read_csv(csv, dtype=str)["account_id"]
    assert '\'=HYPERLINK("http://example.invalid","click")' in set(ids) and "-1234" in set(ids)
    assert not ids.str.startswith(("=", "+", "@")).any()


@pytest.mark.parametrize("args, says", [
    (["score", "--table", "features.parquet", "--out", "s.parquet", "--chunk-size", "0"], "--chunk-size"),
    (["score", "--table", "features.parquet", "--out", "s.parquet", "--max-rejected", "-1"], "--max-rejected"),
    (["changes", "--from", "2024-01-01", "--to", "2024-02-01", "--limit", "-1"], "--limit"),
    (["generate", "--out", "demo", "--accounts", "0"], "--accounts"),
    (["train", "--config", "missing.yaml"], "missing.yaml"),
    (["build-dataset", "--config", "empty.yaml", "--out", "d.parquet"], "empty.yaml"),
    (["build-dataset", "--config", "latin1.yaml", "--out", "d.parquet"], "latin1.yaml"),
    (["train", "--dataset", "features.csv"], "features.csv"),
    (["promote", "--dataset", "nothing.parquet"], "nothing.parquet"),
    (["report", "--scores", "nothing.parquet", "--out", "r.html"], "nothing.parquet"),
    (["explain", "ACC-1", "--db", "nothing.duckdb"], "nothing.duckdb"),
    (["metrics", "--sql", "no_such_metric"], "no_such_metric"),
    (["score", "--table", "features.parquet", "--out", "s.parquet", "--model", "models/nothing"], "models/nothing"),
    (["score", "--table", "features.parquet", "--out", "s.parquet", "--model", "models/customer-health/v1/booster.txt"], "booster.txt"),
    (["score", "--table", "features.parquet", "--out", "s.parquet", "--model", "models:/no-such-model@champion"], "no-such-model"),
    (["score", "--table", "features.parquet", "--out", "s.parquet", "--model", "models:/customer-health/99"], "customer-health"),
])
def test_bad_arguments_end_in_one_line_and_exit_code_2(base, args, says):
    project, _, _ = base
    (project / "empty.yaml").write_bytes(b"")
    (project / "latin1.yaml").write_bytes("sources: {accounts: {path: caf\xe9.csv}}\n".encode("latin-1"))
    pd.DataFrame({"a": [1]}).to_csv(project / "features.csv", index=False)
    result = run(*args)
    assert result.exit_code == 2, result.output
    assert says in result.output and "error" in result.output.lower()
