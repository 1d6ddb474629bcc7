"""build_snapshot_dataset on small hand-made snapshot tables: typing, labels, rejections, leaks, errors."""

from __future__ import annotations

import datetime as dt
import gzip

import numpy as np
import pandas as pd
import pytest

from healthscore import DataError, read_dataset
from healthscore.build.snapshot import build_snapshot_dataset
from healthscore.errors import REJECTION_COLUMNS

D = dt.date
N = 40


def table(n: int = N) -> pd.DataFrame:
    """A realistic export: every 4th account churned; no column gives that away."""
    rng = np.random.default_rng(7)
    churned = np.arange(n) % 4 == 0
    return pd.DataFrame({
        "Customer ID": [f"C{i:03d}" for i in range(n)],
        "Contact email": [f"owner{i}@client{i}.com" for i in range(n)],
        "Company name": [f"Client {i} Ltd" for i in range(n)],
        "Plan": [("starter", "growth", "enterprise")[i % 3] for i in range(n)],
        "Seats": rng.integers(5, 400, n),
        "Support tickets 90d": rng.poisson(3, n),
        "Churned": np.where(churned, "yes", "no"),
    })


def write_csv(tmp_path, frame: pd.DataFrame, name: str = "snapshot.csv", **kwargs):
    path = tmp_path / name
    frame.to_csv(path, index=False, **kwargs)
    return path


def accounted(ds, rows: int) -> None:
    assert len(ds.frame) + len(ds.rejections) == rows
    assert list(ds.rejections.columns) == REJECTION_COLUMNS


def note(ds, *parts: str) -> str:
    hits = [n for n in ds.spec.notes if all(p in n for p in parts)]
    assert hits, f"no note with {parts}: {ds.spec.notes}"
    return hits[0]


def feature(ds, code: str):
    return next(f for f in ds.spec.features if f.code == code)


def test_csv_columns_typed_and_described(tmp_path):
    frame = table()
    frame["ARR"] = [f"${v:,}" for v in np.arange(N) * 997 + 1200]  # "$1,200", "$2,197", ...
    frame["Licence utilisation"] = [f"{v}%" for v in (np.arange(N) * 7) % 100]
    frame["Has SSO"] = np.where(np.arange(N) % 3 == 0, "Yes", "No")
    frame["Last login"] = [(D(2024, 6, 30) - dt.timedelta(days=int(d))).isoformat() for d in (np.arange(N) * 11) % 60]
    path = write_csv(tmp_path, frame, sep=";")

    ds = build_snapshot_dataset(path, "Customer ID", "Churned")

    accounted(ds, N)
    spec = ds.spec
    assert (spec.origin, spec.id_column, spec.as_of_column, spec.label_column, spec.horizon_days) == (
        "snapshot", "account_id", None, "churned", None)
    kinds = {f.code: (f.kind, f.format) for f in spec.features}
    assert kinds == {
        "plan": ("categorical", "text"),
        "seats": ("numeric", "integer"),
        "support_tickets_90d": ("numeric", "integer"),
        "arr": ("numeric", "currency"),
        "licence_utilisation": ("numeric", "percent"),
        "has_sso": ("numeric", "integer"),
        "days_since_last_login": ("numeric", "days"),
    }
    assert feature(ds, "support_tickets_90d").label == "Support tickets 90d"
    assert all(f.good_direction == "none" and f.family == "other" for f in spec.features)
    assert set(spec.attributes) == {"contact_email", "company_name"}  # an id and free text: kept, not features
    assert "CSV, delimiter ';'" in spec.notes[0]

    f = ds.frame
    assert str(f["account_id"].dtype) == "string" and str(f["churned"].dtype) == "boolean"
    assert "as_of" not in f
    assert f["arr"].tolist()[:2] == [1200.0, 2197.0]
    assert f["licence_utilisation"].tolist()[:3] == pytest.approx([0.0, 0.07, 0.14])
    assert f["has_sso"].tolist()[:3] == [1.0, 0.0, 0.0]
    # no as_of: days before the latest date in the file
    assert f["days_since_last_login"].tolist()[:3] == [0.0, 11.0, 22.0]
    note(ds, "'Last login'", "days before 2024-06-30")
    note(ds, "'Contact email'", "looks like an id (email addresses)")
    assert int(f["churned"].sum()) == 10


def test_numbers_stored_as_text(tmp_path):
    frame = table()
    frame["Revenue"] = ["1,234", "(2,000)", "12", "3,456.5", "n/a"] * 8  # accounting negative, missing marker
    frame["Discount"] = ["12,5", "3,25", "0,5", "1.200,75", "7"] * 8  # decimal commas
    frame["Usage"] = ["10", "12", "unknown", "9", "11", "8", "14", "13", "7", "6"] * 4  # 90% numbers
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")

    f = ds.frame
    assert f["revenue"].tolist()[:4] == [1234.0, -2000.0, 12.0, 3456.5] and f["revenue"].isna().sum() == 8
    assert f["discount"].tolist()[:5] == [12.5, 3.25, 0.5, 1200.75, 7.0]
    assert feature(ds, "usage").kind == "numeric" and f["usage"].isna().sum() == 4
    note(ds, "'Discount'", "decimal commas")
    note(ds, "'Usage'", "4 value(s) not numbers read as missing", "'unknown'")
    accounted(ds, N)


@pytest.mark.parametrize("yes, no", [
    ("yes", "no"), ("Y", "N"), (" TRUE ", "false"), ("t", "f"), ("1", "0"), ("Churned", "Retained"),
    ("churn", "active"), ("Lost", "Won"), ("cancelled", "renewed"), ("CANCELED", "Renewed"),
])
def test_label_spellings(tmp_path, yes, no):
    frame = table(12).assign(Churned=[yes, no, no] * 4)
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")
    assert ds.frame["churned"].tolist() == [True, False, False] * 4
    assert ds.rejections.empty


@pytest.mark.parametrize("values", [[True, False, False], [1, 0, 0], [1.0, 0.0, 0.0]])
def test_parquet_typed_labels(tmp_path, values):
    frame = table(12).assign(Churned=values * 4)
    frame.to_parquet(tmp_path / "s.parquet")
    ds = build_snapshot_dataset(tmp_path / "s.parquet", "Customer ID", "Churned")
    assert ds.frame["churned"].tolist() == [True, False, False] * 4


def test_unreadable_labels_excluded_and_missing_labels_kept_unlabelled(tmp_path):
    frame = table()
    frame.loc[3, "Churned"] = "maybe"
    frame.loc[9, "Churned"] = "?"
    frame.loc[10, "Churned"] = ""
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")

    accounted(ds, N)
    ex = ds.rejections
    assert ex["row"].tolist() == [4, 10]  # 1-based row numbers in the file
    assert ex["reason"].tolist() == ["label 'maybe' is not yes/no", "label '?' is not yes/no"]
    assert ex["column"].tolist() == ["Churned", "Churned"] and ex["account_id"].tolist() == ["C003", "C009"]
    assert ds.frame.set_index("account_id").loc["C010", "churned"] is pd.NA
    assert len(ds.labelled) == N - 3
    note(ds, "1 without a label")


def test_no_readable_label_is_an_error(tmp_path):
    frame = table().assign(Churned=["maybe", "unsure", "perhaps", "?"] * 10)
    with pytest.raises(DataError, match=r"snapshot\.csv.*'Churned'.*'maybe'"):
        build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")


def test_missing_and_duplicate_ids_excluded(tmp_path):
    frame = table()
    frame.loc[5, "Customer ID"] = "  "
    frame.loc[[7, 8, 20], "Customer ID"] = "C007"
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")

    accounted(ds, N)
    ex = ds.rejections.set_index("row")
    assert ex.loc[6, "reason"] == "missing account id" and ex.loc[6, "code"] == "missing_id"
    assert ex.loc[[8, 9, 21], "reason"].tolist() == ["duplicate account id"] * 3  # every copy
    assert "C007" not in set(ds.frame["account_id"])
    note(ds, "4 rows rejected", "duplicate account id 3", "missing account id 1")


def test_parquet_with_as_of_detected(tmp_path):
    """Two snapshots: the same account on two dates is fine, twice on one date is not."""
    a, b = table(), table()
    a["snapshot_date"], b["snapshot_date"] = D(2024, 3, 31), D(2024, 6, 30)
    frame = pd.concat([a, b], ignore_index=True)
    frame["Signup date"] = D(2023, 12, 31)
    frame.loc[0, "Signup date"] = D(2023, 1, 1)
    frame.loc[79, "Customer ID"] = "C000"  # C000 twice on 2024-06-30
    frame.to_parquet(tmp_path / "snap.parquet")

    ds = build_snapshot_dataset(tmp_path / "snap.parquet", "Customer ID", "Churned")

    accounted(ds, 2 * N)
    assert ds.spec.as_of_column == "as_of"
    note(ds, "'snapshot_date' taken as the observation date")
    f = ds.frame
    assert set(f["as_of"]) == {D(2024, 3, 31), D(2024, 6, 30)} and isinstance(f["as_of"].iloc[0], dt.date)
    assert ds.rejections["row"].tolist() == [41, 80]
    signup = f.set_index(["account_id", "as_of"])["days_since_signup"]
    assert signup[("C000", D(2024, 3, 31))] == (D(2024, 3, 31) - D(2023, 1, 1)).days
    assert signup[("C001", D(2024, 6, 30))] == (D(2024, 6, 30) - D(2023, 12, 31)).days
    note(ds, "'Signup date'", "days before as_of")


def test_as_of_column_given_with_bad_dates(tmp_path):
    frame = table().assign(period=["31/03/2024", "30/06/2024"] * 20)
    frame.loc[2, "period"] = "last quarter"
    frame.loc[3, "period"] = ""
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned", as_of_column="period")

    accounted(ds, N)
    assert set(ds.frame["as_of"]) == {D(2024, 3, 31), D(2024, 6, 30)}
    assert ds.rejections["reason"].tolist() == ["as_of 'last quarter' is not a date", "missing as_of"]
    note(ds, "day/month/year")


def test_leaks_excluded_and_noted(tmp_path):
    frame = table()
    churned = frame["Churned"] == "yes"
    frame["cancel_date"] = np.where(churned, "2024-07-15", "")  # by name
    frame["churn_status"] = np.where(churned, "gone", "fine")  # by name
    frame["Account state"] = np.where(churned, "Closed", "Open")  # nearly the label
    frame.loc[1, "Account state"] = "Closed"
    frame["closed_on"] = np.where(churned, "2024-08-01", "")  # set only for churned accounts
    frame["days_left"] = np.where(churned, 0, 30 + np.arange(N))  # separates perfectly
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")

    names = set(ds.spec.feature_codes) | set(ds.spec.attributes) | set(ds.frame.columns)
    assert not names & {"cancel_date", "churn_status", "account_state", "closed_on", "days_since_closed", "days_left"}
    assert set(ds.spec.feature_codes) == {"plan", "seats", "support_tickets_90d"}
    note(ds, "'cancel_date' excluded", "name suggests the outcome")
    note(ds, "'churn_status' excluded", "name suggests the outcome")
    note(ds, "'Account state' excluded: looks like a leak (AUC 0.98 on its own)")
    note(ds, "'closed_on' excluded: looks like a leak", "missing almost exactly when the account was retained")
    note(ds, "'days_left' excluded: looks like a leak (AUC 0.00 on its own)")
    accounted(ds, N)


def test_too_few_labels_to_test_for_leaks_is_said(tmp_path):
    ds = build_snapshot_dataset(write_csv(tmp_path, table(12)), "Customer ID", "Churned")
    note(ds, "too few labelled rows (3 churned, 9 retained")


def test_id_like_columns_are_not_features(tmp_path):
    frame = table().assign(
        crm_id=np.arange(N) + 90000,  # unique integers named like an id
        ref=[f"AC-{i:05d}" for i in range(N)],  # unique codes
        uuid=[f"{i:08x}-1111-2222-3333-444455556666" for i in range(N)],
        region_id=np.arange(N) // 2 % 4,  # repeats: a category, not an identifier
    )
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")
    assert {"crm_id", "ref", "uuid", "contact_email"} <= set(ds.spec.attributes)
    assert not {"crm_id", "ref", "uuid", "contact_email"} & set(ds.spec.feature_codes)
    assert feature(ds, "region_id").kind == "categorical"
    note(ds, "'ref' kept as attribute", "unique code per row")
    note(ds, "'uuid' kept as attribute", "UUIDs")


def test_empty_and_constant_columns_not_used(tmp_path):
    frame = table().assign(notes="", currency="EUR", escalated=np.where(np.arange(N) % 5 == 1, "yes", ""))
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")
    assert not {"notes", "currency"} & set(ds.frame.columns)
    note(ds, "'notes' not used: empty")
    note(ds, "'currency' not used: constant")
    escalated = ds.frame["escalated"]  # one value and blanks: still tells rows apart
    assert (escalated == 1).sum() == 8 and escalated.isna().sum() == N - 8


def test_gzip_tab_separated_without_label(tmp_path):
    path = tmp_path / "score_me.csv.gz"
    with gzip.open(path, "wt") as f:
        table().drop(columns="Churned").to_csv(f, sep="\t", index=False)
    ds = build_snapshot_dataset(path, "customer_id")  # matched to 'Customer ID'
    assert ds.spec.label_column is None and "churned" not in ds.frame
    assert len(ds.frame) == N and "delimiter '\\t'" in ds.spec.notes[0]


def test_round_trip_through_write_and_read(tmp_path):
    frame = table().assign(last_login=[f"2024-06-{d:02d}" for d in np.arange(N) % 28 + 1])
    frame.loc[0, "Churned"] = "maybe"
    ds = build_snapshot_dataset(write_csv(tmp_path, frame), "Customer ID", "Churned")
    out = ds.write(tmp_path / "out" / "dataset.parquet")

    back = read_dataset(out)
    assert back.spec == ds.spec
    pd.testing.assert_frame_equal(back.frame, ds.frame)
    assert str(back.frame["churned"].dtype) == "boolean"
    assert len(pd.read_csv(tmp_path / "out" / "dataset.rejected.csv")) == 1


@pytest.mark.parametrize("make, match", [
    (lambda p: p.write_text(""), "the file is empty"),
    (lambda p: p.write_text("Customer ID,Churned\n"), "the table is empty"),
    (lambda p: p.write_bytes(b"\x00\x01\x02binary\x00" * 50), "cannot read the file"),
])
def test_unusable_csv_files(tmp_path, make, match):
    path = tmp_path / "bad.csv"
    make(path)
    with pytest.raises(DataError, match=f"bad.csv.*{match}"):
        build_snapshot_dataset(path, "Customer ID", "Churned")


def test_unreadable_parquet_and_missing_file(tmp_path):
    (tmp_path / "bad.parquet").write_text("not parquet at all")
    with pytest.raises(DataError, match="bad.parquet: cannot read the file"):
        build_snapshot_dataset(tmp_path / "bad.parquet", "Customer ID")
    with pytest.raises(DataError, match="nope.csv: file not found"):
        build_snapshot_dataset(tmp_path / "nope.csv", "Customer ID")


@pytest.mark.parametrize("id_column, label_column, missing", [
    ("Customer ID", "Churn flag", "label column 'Churn flag'"),
    ("Account", "Churned", "id column 'Account'"),
])
def test_missing_columns_named_with_the_available_ones(tmp_path, id_column, label_column, missing):
    path = write_csv(tmp_path, table())
    with pytest.raises(DataError, match="snapshot.csv") as err:
        build_snapshot_dataset(path, id_column, label_column)
    assert f"{missing} not found" in str(err.value) and "'Support tickets 90d'" in str(err.value)


def test_nothing_left_or_unknown_type_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"snapshot\.csv: every row is rejected(.|\n)*Customer ID: duplicate account id"):
        build_snapshot_dataset(write_csv(tmp_path, table().assign(**{"Customer ID": "C1"})), "Customer ID", "Churned")
    (tmp_path / "s.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"s\.xlsx: unknown file type"):
        build_snapshot_dataset(tmp_path / "s.xlsx", "Customer ID")
