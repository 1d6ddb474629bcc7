"""SnapshotTableInput: a snapshot table scored later is read, a chunk at a time, exactly as the
training table was read (the recorded ColumnReading), with unreadable rows rejected."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from healthscore import DataError
from healthscore.build.snapshot import build_snapshot_dataset
from healthscore.dataset import FeatureSpec
from healthscore.errors import REJECTION_COLUMNS
from healthscore.scoring.chunks import row_keys
from healthscore.scoring.snapshot_input import SnapshotTableInput

D = dt.date


def accounts(n: int, seed: int, start: int = 0) -> pd.DataFrame:
    """A CSV-style export: every column is text as a CRM would write it."""
    rng = np.random.default_rng(seed)
    i = np.arange(start, start + n)
    return pd.DataFrame({
        "Customer ID": [f"C{k:03d}" for k in i],
        "Account name": [f"Client {k} Ltd" for k in i],
        "Plan": [("starter", "growth", "enterprise")[k % 3] for k in i],
        "Seats": rng.integers(5, 400, n).astype(str),
        "ARR": [f"${v:,}" for v in rng.integers(1000, 90000, n)],
        "Licence utilisation": [f"{v}%" for v in rng.integers(0, 100, n)],
        "Has SSO": rng.choice(["Yes", "No"], n),
        "Last login": [(D(2024, 6, 30) - dt.timedelta(days=int(d))).isoformat() for d in rng.integers(0, 90, n)],
    })


def training(tmp_path, frame: pd.DataFrame | None = None, name: str = "train.csv"):
    frame = accounts(40, seed=1) if frame is None else frame
    frame = frame.assign(Churned=np.where(np.arange(len(frame)) % 4 == 0, "yes", "no"))
    frame.to_csv(tmp_path / name, index=False)
    return build_snapshot_dataset(tmp_path / name, "Customer ID", "Churned")


def write(tmp_path, frame: pd.DataFrame, name: str = "score.csv"):
    path = tmp_path / name
    frame.to_parquet(path) if name.endswith(".parquet") else frame.to_csv(path, index=False)
    return path


def read_all(table: SnapshotTableInput, size: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    chunks = list(table.chunks(size))
    assert all(len(c.rows) + len(c.rejected) <= size for c in chunks)
    rows = pd.concat([c.rows for c in chunks])
    rejected = pd.concat([c.rejected for c in chunks], ignore_index=True)
    return rows, rejected


def test_round_trip_reads_a_new_file_as_the_builder_does(tmp_path):
    ds = training(tmp_path)
    readings = {f.code: (f.reading.how, f.reading.source) for f in ds.spec.features}
    assert readings == {
        "plan": ("text", "Plan"), "seats": ("text_number", "Seats"), "arr": ("text_number", "ARR"),
        "licence_utilisation": ("text_number", "Licence utilisation"), "has_sso": ("flag", "Has SSO"),
        "days_since_last_login": ("date", "Last login"),
    }
    assert feature(ds, "licence_utilisation").reading.percent and feature(ds, "days_since_last_login").reading.days_before == "latest"

    new = accounts(11, seed=2, start=100)
    new.loc[7, "Last login"] = "2024-07-15"  # the file's latest date, in the third chunk of 3
    path = write(tmp_path, new)
    table = SnapshotTableInput(path, "customer_id", ds.spec.features)  # the id matched in snake_case

    rows, rejected = read_all(table, 3)
    assert table.rows == 11 and table.description == str(path) and rejected.empty
    assert rows.index.tolist() == list(range(1, 12))
    expected = build_snapshot_dataset(path, "Customer ID").frame  # same shape, so the same guesses
    assert list(rows.columns) == ["account_id", *ds.spec.feature_codes, "account_name"]
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), expected[rows.columns])
    assert rows.loc[8, "days_since_last_login"] == 0 and rows.loc[1, "licence_utilisation"] < 1
    pd.testing.assert_frame_equal(read_all(table, 1000)[0], rows)


def test_the_training_reading_is_replayed_not_guessed_again(tmp_path):
    frame = accounts(40, seed=1).assign(
        Discount=["12,5", "3,25", "0,5", "1.200,75", "7"] * 8,  # decimal commas
        Renewal=[f"{d}/{m}/2025" for d, m in zip(np.arange(40) % 28 + 1, np.arange(40) % 12 + 1)],  # day first
    )
    ds = training(tmp_path, frame)
    assert feature(ds, "discount").reading.decimal_comma and feature(ds, "days_since_renewal").reading.dayfirst

    new = accounts(4, seed=3).assign(Plan="growth", Discount=["1,234", "2,500", "10", ""],  # alone: thousands
                                     Renewal=["01/02/2025", "03/04/2025", "", "05/06/2025"])  # alone: month first
    rows, rejected = read_all(SnapshotTableInput(write(tmp_path, new), "Customer ID", ds.spec.features), 2)

    assert rejected.empty
    assert rows["discount"].tolist()[:3] == [1.234, 2.5, 10.0] and np.isnan(rows["discount"].iloc[3])
    assert rows["plan"].tolist() == ["growth"] * 4 and str(rows["plan"].dtype) == "string"
    latest = pd.Timestamp(2025, 6, 5)  # no as_of: days before the latest date in any date column of the file
    assert rows["days_since_renewal"].tolist()[:2] == [(latest - pd.Timestamp(2025, 2, 1)).days, (latest - pd.Timestamp(2025, 4, 3)).days]
    guessed = build_snapshot_dataset(write(tmp_path, new, "alone.csv"), "Customer ID").frame
    assert guessed["discount"].iloc[0] == 1234.0 and "plan" not in guessed  # what guessing again would have done


def test_unreadable_values_reject_their_rows(tmp_path):
    ds = training(tmp_path)
    new = accounts(9, seed=4)
    new.loc[1, "ARR"] = "lots"
    new.loc[3, "Last login"] = "31/31/2024"
    new.loc[4, ["Has SSO", "Seats"]] = ["maybe", "many"]  # two bad values: the first column's is given
    new.loc[5, ["Seats", "Licence utilisation", "Has SSO", "Last login", "Plan"]] = ["", "NA", "null", "n/a", ""]  # missing: legal
    rows, rejected = read_all(SnapshotTableInput(write(tmp_path, new), "Customer ID", ds.spec.features), 4)

    assert list(rejected.columns) == REJECTION_COLUMNS
    assert set(rejected["table"]) == {str(tmp_path / "score.csv")}  # the input the rows were read from
    assert rejected.drop(columns="table").to_dict("records") == [
        {"row": 2, "account_id": "C001", "column": "ARR", "value": "lots", "code": "not_a_number", "reason": "'lots' is not a number"},
        {"row": 4, "account_id": "C003", "column": "Last login", "value": "31/31/2024", "code": "not_a_date",
         "reason": "'31/31/2024' is not a date"},
        {"row": 5, "account_id": "C004", "column": "Seats", "value": "many", "code": "not_a_number", "reason": "'many' is not a number"},
    ]
    assert rows.index.tolist() == [1, 3, 6, 7, 8, 9] and len(rows) + len(rejected) == len(new)
    assert rows.loc[6, ["seats", "licence_utilisation", "has_sso", "days_since_last_login"]].isna().all()
    assert rows.loc[6, "plan"] is pd.NA


def test_ids_are_passed_on_and_duplicates_found_by_a_first_pass(tmp_path):
    ds = training(tmp_path)
    new = accounts(8, seed=5)
    new.loc[[2, 6], "Customer ID"] = "C002"
    new.loc[4, "Customer ID"] = " "  # missing: passed on for the scorer to reject
    table = SnapshotTableInput(write(tmp_path, new), "Customer ID", ds.spec.features)

    assert table.duplicate_keys() == {"C002"} and table.rows == 8
    rows, rejected = read_all(table, 3)
    assert rejected.empty and rows.loc[5, "account_id"] is pd.NA and rows.loc[7, "account_id"] == "C002"


def test_parquet_with_as_of_read_in_batches(tmp_path):
    """A Parquet table with typed columns and two snapshots: days count from each row's as_of."""
    a, b = accounts(40, seed=1), accounts(40, seed=6)
    a["snapshot_date"], b["snapshot_date"] = D(2024, 3, 31), D(2024, 6, 30)
    train = pd.concat([a, b], ignore_index=True).assign(Churned=np.where(np.arange(80) % 4 == 0, "yes", "no"))
    train["Seats"] = train["Seats"].astype(int)
    train["Last login"] = pd.to_datetime(train["Last login"]).dt.date
    train.to_parquet(tmp_path / "train.parquet")
    ds = build_snapshot_dataset(tmp_path / "train.parquet", "Customer ID", "Churned")
    assert ds.spec.as_of_column == "as_of" and feature(ds, "seats").reading.how == "number"
    assert feature(ds, "days_since_last_login").reading.days_before == "as_of"

    new = train.drop(columns="Churned").iloc[[0, 1, 40, 41, 42]].reset_index(drop=True)
    new.loc[4, "Customer ID"] = "C001"  # C001 twice on 2024-06-30, once on 2024-03-31
    new.loc[2, "Last login"] = None
    table = SnapshotTableInput(write(tmp_path, new, "score.parquet"), "Customer ID", ds.spec.features)

    assert table.rows == 5 and table.duplicate_keys() == {"C001|2024-06-30"}
    rows, rejected = read_all(table, 2)
    assert rejected.empty and rows.index.tolist() == [1, 2, 3, 4, 5]
    assert rows["as_of"].tolist() == [D(2024, 3, 31)] * 2 + [D(2024, 6, 30)] * 3
    expected = [(D(2024, 3, 31) - new.loc[0, "Last login"]).days, (D(2024, 3, 31) - new.loc[1, "Last login"]).days]
    assert rows["days_since_last_login"].tolist()[:2] == expected and np.isnan(rows.loc[3, "days_since_last_login"])
    assert rows["seats"].tolist() == new["Seats"].astype(float).tolist()
    assert set(row_keys(rows["account_id"], rows["as_of"])) >= table.duplicate_keys()


def test_an_as_of_column_named_by_the_user(tmp_path):
    """--as-of-column at training has its twin at scoring: a column called 'period' is the as_of."""
    frame = accounts(40, seed=1).assign(period="2024-06-30", Churned=np.where(np.arange(40) % 4 == 0, "yes", "no"))
    frame.to_csv(tmp_path / "train.csv", index=False)
    ds = build_snapshot_dataset(tmp_path / "train.csv", "Customer ID", "Churned", as_of_column="period")
    new = write(tmp_path, frame.drop(columns="Churned").head(5))
    with pytest.raises(DataError, match="counts days before each row's as_of"):
        SnapshotTableInput(new, "Customer ID", ds.spec.features)
    rows, rejected = read_all(SnapshotTableInput(new, "Customer ID", ds.spec.features, as_of_column="Period"), 2)
    assert rejected.empty and set(rows["as_of"]) == {D(2024, 6, 30)}
    pd.testing.assert_series_equal(rows["days_since_last_login"], ds.frame["days_since_last_login"].head(5).set_axis(rows.index))


def test_a_csv_trained_model_scores_a_typed_parquet_file_alike(tmp_path):
    ds = training(tmp_path)
    new = accounts(6, seed=7)
    typed = new.assign(Seats=new["Seats"].astype(int), **{"Last login": pd.to_datetime(new["Last login"])})
    from_csv = read_all(SnapshotTableInput(write(tmp_path, new), "Customer ID", ds.spec.features), 4)[0]
    from_parquet = read_all(SnapshotTableInput(write(tmp_path, typed, "score.parquet"), "Customer ID", ds.spec.features), 4)[0]
    pd.testing.assert_frame_equal(from_parquet, from_csv)


def test_an_as_of_that_is_not_a_date_rejects_the_row(tmp_path):
    frame = accounts(40, seed=1).assign(period=["31/03/2024", "30/06/2024"] * 20)
    frame = frame.assign(Churned=np.where(np.arange(40) % 4 == 0, "yes", "no"))
    frame.to_csv(tmp_path / "train.csv", index=False)
    ds = build_snapshot_dataset(tmp_path / "train.csv", "Customer ID", "Churned", as_of_column="period")

    new = accounts(20, seed=8).assign(as_of=["01/03/2025", "last quarter", ""] + ["13/03/2025"] * 17)
    rows, rejected = read_all(SnapshotTableInput(write(tmp_path, new), "Customer ID", ds.spec.features), 2)
    assert rows["as_of"].tolist() == [D(2025, 3, 1)] + [D(2025, 3, 13)] * 17  # day first: decided on the whole column
    assert rejected[["row", "column", "reason"]].values.tolist() == [
        [2, "as_of", "as_of 'last quarter' is not a date"], [3, "as_of", "missing as_of"]]


def test_latin1_byte_late_in_the_file_reads_every_chunk_as_latin1(tmp_path):
    ds = training(tmp_path)
    new = accounts(6, seed=9)
    new.loc[5, "Account name"] = "Café Ltd"
    path = tmp_path / "score.csv"
    new.to_csv(path, index=False, encoding="latin-1")
    rows, _ = read_all(SnapshotTableInput(path, "Customer ID", ds.spec.features), 2)
    assert rows.loc[6, "account_name"] == "Café Ltd"


def test_missing_column_and_catalogue_model_are_errors(tmp_path):
    ds = training(tmp_path)
    path = write(tmp_path, accounts(5, seed=10).drop(columns="ARR"))
    with pytest.raises(DataError, match=r"score\.csv: feature arr: column 'ARR' not found") as err:
        SnapshotTableInput(path, "Customer ID", ds.spec.features)
    assert "'Licence utilisation'" in str(err.value)
    with pytest.raises(DataError, match="id column 'Account' not found"):
        SnapshotTableInput(path, "Account", ds.spec.features)
    with pytest.raises(DataError, match="not trained on a snapshot table"):
        SnapshotTableInput(path, "Customer ID", [FeatureSpec(code="logins_30d", label="Logins")])
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="bad.parquet: cannot read the file"):
        SnapshotTableInput(tmp_path / "bad.parquet", "Customer ID", ds.spec.features)


def feature(ds, code: str) -> FeatureSpec:
    return next(f for f in ds.spec.features if f.code == code)


def test_train_and_score_a_snapshot_table_through_the_command(project):
    """`train --table` then `score --table`: every row scored or rejected, scores as the built table's."""
    from typer.testing import CliRunner

    from healthscore.cli import app
    from healthscore.model.estimator import HealthModel
    from healthscore.scores_file import rejected_path_for

    def with_churn(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        utilisation = frame["Licence utilisation"].str.rstrip("%").astype(float) / 100
        idle = (pd.Timestamp("2024-06-30") - pd.to_datetime(frame["Last login"])).dt.days > 60
        p = 0.05 + 0.6 * (utilisation < 0.3) + 0.25 * idle  # thresholds: what trees see and a logistic does not
        return frame.assign(Churned=np.where(rng.random(len(frame)) < p, "yes", "no"))

    run = lambda *args: CliRunner().invoke(app, [str(a) for a in args])  # noqa: E731
    with_churn(accounts(1500, seed=3), seed=4).to_csv(project / "train.csv", index=False)
    trained = run("train", "--table", project / "train.csv", "--id-column", "Customer ID", "--label-column", "Churned")
    assert trained.exit_code == 0, trained.output

    today = accounts(300, seed=5, start=5000)
    today.loc[7, "Seats"] = "lots"
    today.loc[12, "Customer ID"] = ""
    today.to_csv(project / "today.csv", index=False)
    out = project / "scores.parquet"
    scored = run("score", "--table", project / "today.csv", "--id-column", "Customer ID", "--model",
                 "models:/customer-health@challenger", "--out", out, "--history", project / "scores.duckdb", "--chunk-size", 64)
    assert scored.exit_code == 0, scored.output
    scores, rejected = pd.read_parquet(out), pd.read_parquet(rejected_path_for(out))
    assert len(scores) + len(rejected) == 300
    rejected = rejected.astype(object).where(rejected.notna(), None)
    assert rejected[["row", "column", "value", "reason"]].to_dict("records") == [
        {"row": 8, "column": "Seats", "value": "lots", "reason": "'lots' is not a number"},
        {"row": 13, "column": "account_id", "value": None, "reason": "missing account id"}]
    assert set(scores["model_version"]) == {"1"} and scores["account_name"].str.startswith("Client ").all()
    assert (scores["as_of"] == pd.to_datetime(scores["scored_at"]).dt.date).all()  # no dates in the table: the day it is scored

    strict = run("score", "--table", project / "today.csv", "--id-column", "Customer ID", "--model",
                 "models:/customer-health@challenger", "--out", project / "strict.parquet", "--max-rejected", 0.001)
    assert strict.exit_code == 1 and "2 of 300 rows (0.7%) could not be scored" in strict.output

    clean = today.drop(index=[7, 12])
    clean.to_csv(project / "clean.csv", index=False)
    built = build_snapshot_dataset(project / "clean.csv", "Customer ID").frame
    model = HealthModel.load(project / "models" / "customer-health" / "v1")
    expected = model.score(built).set_index(built["account_id"])["health_score"]
    np.testing.assert_allclose(scores.set_index("account_id")["health_score"].loc[expected.index], expected)
