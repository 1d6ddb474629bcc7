"""Hostile and careless input across the commands: nothing reads or writes what it should not,
nothing destroys the user's data, and every error is one line with exit code 2 (never a
traceback). Metric SQL injection is covered in tests/test_sql_expressions.py and the config tests;
tampered models in tests/test_model.py."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from healthscore.build.snapshot import build_snapshot_dataset
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


def _snapshot(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    """A snapshot table without as_of: days since the last login count back from its reference date."""
    rng = np.random.default_rng(seed)
    idle = rng.integers(0, 120, n)
    utilisation = rng.integers(0, 100, n)
    churn = rng.random(n) < 0.05 + 0.5 * (utilisation < 30) + 0.3 * (idle > 60)
    return pd.DataFrame({"Customer ID": [f"C{k:05d}" for k in range(start, start + n)],
                         "Last login": [(dt.date(2024, 6, 30) - dt.timedelta(days=int(d))).isoformat() for d in idle],
                         "Utilisation": utilisation, "Churned": np.where(churn, "yes", "no")})


@pytest.fixture(scope="module")
def snapshot_model(project):
    """A model trained on a snapshot table, exported as `snapshot-health`."""
    table = project / "snapshot-train.csv"
    _snapshot(1500, seed=3).to_csv(table, index=False)
    data = build_snapshot_dataset(table, "Customer ID", "Churned")
    write_export(train(data, CONFIG).model.save(project / "snapshot-saved"), "snapshot-health", "1", "run-s")
    point_alias("snapshot-health", "champion", "1")
    return project / "models" / "snapshot-health"


def test_one_row_dated_2099_moves_nothing_at_training(tmp_path):
    table = _snapshot(1500, seed=3)
    table.to_csv(tmp_path / "clean.csv", index=False)
    clean = build_snapshot_dataset(tmp_path / "clean.csv", "Customer ID", "Churned")
    table.loc[10, "Last login"] = "2099-01-01"
    table.loc[11, "Last login"] = "1900-01-01"
    table.to_csv(tmp_path / "odd.csv", index=False)
    odd = build_snapshot_dataset(tmp_path / "odd.csv", "Customer ID", "Churned")
    assert odd.spec.reference_date == clean.spec.reference_date == dt.date(2024, 6, 30)
    assert odd.rejections[["row", "code", "reason"]].to_dict("records") == [
        {"row": 11, "code": "after_reference_date", "reason": "'2099-01-01' is after the reference date (2024-06-30)"},
        {"row": 12, "code": "before_date_floor", "reason": "'1900-01-01' is before the date floor (1990-01-01): a placeholder, not history"}]
    kept = clean.frame.drop(index=[10, 11]).reset_index(drop=True)
    pd.testing.assert_frame_equal(odd.frame, kept)  # every other row's days-since value is what it was
    given = build_snapshot_dataset(tmp_path / "clean.csv", "Customer ID", "Churned", reference_date=dt.date(2024, 6, 1))
    after = (pd.to_datetime(table["Last login"]) > "2024-06-01").sum() - 1  # the 2099 row is not in clean.csv
    assert given.spec.reference_date == dt.date(2024, 6, 1) and (given.rejections["code"] == "after_reference_date").sum() == after
    assert any(n.startswith("reference date 2024-06-01 (given)") for n in given.spec.notes)


def test_one_row_dated_2099_changes_no_other_accounts_score(snapshot_model, tmp_path):
    """The issue's case: one outlier row among 2,000 at scoring moved 1,535 other accounts' scores."""
    today = _snapshot(2000, seed=5, start=50000).drop(columns="Churned")
    today.to_csv(tmp_path / "today.csv", index=False)
    today.loc[100, "Last login"] = "2099-12-31"
    today.loc[101, "Last login"] = "1950-06-01"
    today.to_csv(tmp_path / "odd.csv", index=False)
    runs = {}
    for name in ("today", "odd"):
        out = tmp_path / f"{name}-scores.parquet"
        result = run("score", "--table", tmp_path / f"{name}.csv", "--id-column", "Customer ID", "--model", snapshot_model,
                     "--out", out, "--history", tmp_path / f"{name}.duckdb")
        assert result.exit_code == 0, result.output
        assert "reference date 2024-06-30: the table's dates count days back from it" in result.output
        runs[name] = pd.read_parquet(out).set_index("account_id")["health_score"]
    moved = runs["odd"].index.symmetric_difference(runs["today"].index)
    assert sorted(moved) == ["C50100", "C50101"]
    pd.testing.assert_series_equal(runs["odd"], runs["today"].drop(index=moved))
    rejected = pd.read_parquet(tmp_path / "odd-scores.rejected.parquet")
    assert list(rejected["code"]) == ["after_reference_date", "before_date_floor"] and list(rejected["row"]) == [101, 102]
    meta = json.loads((tmp_path / "odd-scores.meta.json").read_text())
    assert meta["reference_date"] == "2024-06-30"
    given = run("score", "--table", tmp_path / "today.csv", "--id-column", "Customer ID", "--model", snapshot_model,
                "--out", tmp_path / "given.parquet", "--history", tmp_path / "given.duckdb", "--reference-date", "2024-07-31")
    assert given.exit_code == 0 and "reference date 2024-07-31" in given.output
    shifted = pd.read_parquet(tmp_path / "given.parquet").set_index("account_id")["health_score"]
    assert (shifted != runs["today"]).any()  # a month later: every login is a month older


def test_a_column_that_unreadable_values_would_turn_into_text_is_an_error_unless_accepted(tmp_path):
    table = _snapshot(300, seed=8)
    table["Seats"] = [str(10 + i % 50) if i % 3 else "lots" for i in range(300)]  # a third unreadable
    table.to_csv(tmp_path / "t.csv", index=False)
    result = run("build-dataset", "--table", tmp_path / "t.csv", "--id-column", "Customer ID", "--label-column", "Churned",
                 "--out", tmp_path / "d.parquet")
    assert result.exit_code == 2 and not (tmp_path / "d.parquet").exists()
    said = " ".join(result.output.split())
    assert "column 'Seats': 200 of its 300 values are numbers (67%, under the 90% needed), so it would silently stop being numbers; " \
           "values that are not: row 1 ('lots'), row 4 ('lots')" in said and "--mixed-columns text" in said
    accepted = build_snapshot_dataset(tmp_path / "t.csv", "Customer ID", "Churned", mixed_columns="text")
    assert "seats" in accepted.spec.attributes  # the user said so: text (51 values: free text), with a note
    assert any(n.startswith("column 'Seats': 200 of its 300 values are numbers") for n in accepted.spec.notes)


def test_a_table_that_cannot_train_a_model_is_said_up_front(tmp_path):
    """One class, a handful of rows, an infinite value, a model name MLflow refuses: one line, exit 2,
    before any training (not scikit-learn's or MLflow's message)."""
    table = _snapshot(300, seed=9)
    table.assign(Churned="no").to_csv(tmp_path / "one-class.csv", index=False)
    table.head(5).to_csv(tmp_path / "tiny.csv", index=False)
    table.to_csv(tmp_path / "ok.csv", index=False)
    data = build_snapshot_dataset(tmp_path / "ok.csv", "Customer ID", "Churned")
    infinite = data.frame.copy()
    infinite.loc[[3, 8], "utilisation"] = np.inf
    Dataset(infinite, data.spec).write(tmp_path / "infinite.parquet")
    train_table = ["train", "--id-column", "Customer ID", "--label-column", "Churned", "--table"]
    for args, says in [
        (train_table + [tmp_path / "one-class.csv"], "300 labelled rows (0 churned, 300 retained): a model needs at least 10 of each"),
        (train_table + [tmp_path / "tiny.csv"], "5 labelled rows ("),
        (["train", "--dataset", tmp_path / "infinite.parquet"], "feature 'utilisation': 2 infinite value(s) (rows 4, 9)"),
        (train_table + [tmp_path / "ok.csv", "--name", "team/health"], "--name 'team/health': a model name cannot contain '/' or ':'"),
    ]:
        result = run(*args)
        assert result.exit_code == 2 and says in " ".join(result.output.split()), result.output


def test_an_infinite_number_in_a_snapshot_table_is_rejected_with_its_row(tmp_path):
    table = _snapshot(300, seed=9).assign(MRR=[str(100 + i) for i in range(300)])
    table.loc[4, "MRR"] = "1e309"
    table.to_csv(tmp_path / "t.csv", index=False)
    data = build_snapshot_dataset(tmp_path / "t.csv", "Customer ID", "Churned")
    assert data.rejections[["row", "column", "code", "reason"]].to_dict("records") == [
        {"row": 5, "column": "MRR", "code": "not_a_number", "reason": "'1e309' is not a finite number"}]
    assert np.isfinite(data.frame["mrr"]).all() and len(data.frame) == 299


def test_promote_on_an_unlabelled_dataset_is_one_line(base, tmp_path):
    _, features, latest = base  # the latest month, its label column dropped
    unlabelled = Dataset(latest.assign(churned=None).reset_index(drop=True), synthetic_dataset(accounts=10, months=2).spec)
    for dataset in (features, unlabelled.write(tmp_path / "unlabelled.parquet")):
        result = run("promote", "--dataset", dataset)
        assert result.exit_code == 2 and result.output.startswith("error: the dataset has no churn labels"), result.output
        assert len(result.output.strip().splitlines()) == 1


def test_text_in_a_metric_column_of_a_dataset_file_is_one_line(base, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    project, features, latest = base
    edited = latest.reset_index(drop=True).astype({"usage": str})
    edited.loc[0, "usage"] = "lots"
    table = pa.Table.from_pandas(edited, preserve_index=False)
    pq.write_table(table.replace_schema_metadata(pq.read_schema(features).metadata), tmp_path / "edited.parquet")
    result = run("score", "--table", tmp_path / "edited.parquet", "--model", project / "models" / "customer-health", "--out",
                 tmp_path / "s.parquet", "--history", tmp_path / "h.duckdb")
    assert result.exit_code == 2 and "metric column 'usage' holds text where numbers belong (first: ['lots'])" in result.output
    assert not (tmp_path / "s.parquet").exists()
