"""Labels that cannot silently go wrong, and metric SQL that is data, not code."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import rawbase
from healthscore import ConfigError, DataError, build_dataset, load_config
from healthscore.build.sources import load_sources
from healthscore.cli import app

D = dt.date


def _daily_churn_base(folder, horizon: dict):
    """One account churning on every day of 2024 (plus some that never churn), a monthly schedule."""
    days = pd.date_range("2024-01-01", "2024-12-31").date
    ids = [f"A{i:03d}" for i in range(len(days) + 40)]
    frames = {
        "accounts": pd.DataFrame({"account_id": ids}),
        "subscriptions": pd.DataFrame({"account_id": ids, "start_date": [D(2023, 6, 1)] * len(ids),
                                       "end_date": list(days) + [None] * 40}),
        "events": pd.DataFrame({"account_id": ids, "event_date": [D(2023, 7, 1)] * len(ids), "event_type": ["login"] * len(ids)}),
    }
    config = {"sources": {n: {"path": f"{n}.parquet"} for n in frames}, "churn": horizon | {"check_label_rates": False},
              "schedule": {"start": "2024-01-01", "end": "2024-12-01", "every": "month"}, "data_end": "2025-01-01",
              "metrics": {"unusable": "drop"}}
    return build_dataset(load_config(rawbase.write(folder, frames, config))), frames


def test_monthly_label_windows_tile_calendar_months(tmp_path):
    """With a horizon of one month every churn of 2024 (months of 28-31 days, a leap February)
    falls in exactly one as_of's window, and it is the month it happened in."""
    ds, frames = _daily_churn_base(tmp_path, {"horizon_months": 1})
    churned = ds.frame[ds.frame.churned == True]  # noqa: E712
    per_account = churned.groupby("account_id")["as_of"].agg(["count", "first"])
    churn_day = frames["subscriptions"].set_index("account_id")["end_date"].dropna()
    assert len(per_account) == len(churn_day) == 366 and (per_account["count"] == 1).all()
    assert all(per_account.loc[a, "first"] == d.replace(day=1) for a, d in churn_day.items())


def test_a_30_day_horizon_on_a_monthly_schedule_loses_churns_and_says_so(tmp_path):
    ds, frames = _daily_churn_base(tmp_path, {"horizon_days": 30})
    counted = ds.frame[ds.frame.churned == True].groupby("account_id").size()  # noqa: E712
    assert len(counted) < 366 or (counted > 1).any()  # 31 March falls in no window, 1 March in two
    assert any("does not tile the monthly schedule" in n for n in ds.spec.notes)


def test_horizon_in_schedule_steps(tmp_path):
    config = load_config(rawbase.write(tmp_path, config=rawbase.config_dict() | {"churn": {"horizon_steps": 2}}))
    assert config.horizon.end(D(2024, 1, 31)) == D(2024, 3, 31) and config.horizon.end(D(2024, 12, 1)) == D(2025, 2, 1)
    with pytest.raises(ConfigError, match="give one of horizon_months, horizon_steps, horizon_days"):
        load_config(rawbase.write(tmp_path, config=rawbase.config_dict() | {"churn": {"horizon_days": 30, "horizon_months": 1}}))


def _base_with_cutoff(folder, closed_at_export: bool, check: bool = True):
    """300 accounts with one contract row each, about 2% churn a month; with `closed_at_export` the
    export writes 2024-06-15 as the end of every open contract, as some billing exports do."""
    n = 300
    ids = [f"A{i:03d}" for i in range(n)]
    ends = [D(2024, 1 + (i // 10) % 5, 10) if i % 10 == 0 else (D(2024, 6, 15) if closed_at_export else None) for i in range(n)]
    frames = {
        "accounts": pd.DataFrame({"account_id": ids}),
        "subscriptions": pd.DataFrame({"account_id": ids, "start_date": [D(2023, 1, 1) + dt.timedelta(days=i) for i in range(n)],
                                       "end_date": ends}),
        "events": pd.DataFrame({"account_id": ids * 2, "event_date": [D(2023, 11, 1)] * n + [D(2024, 6, 30)] * n,
                                "event_type": ["login"] * 2 * n}),
    }
    frames["subscriptions"].loc[0, "start_date"] = D(2024, 6, 28)  # a late signup: the export reaches the data end
    config = {"sources": {n_: {"path": f"{n_}.parquet"} for n_ in frames}, "churn": {"horizon_months": 1, "check_label_rates": check},
              "schedule": {"start": "2024-01-01", "end": "2024-06-01", "every": "month"}, "data_end": "2024-07-01",
              "metrics": {"unusable": "drop"}}
    return load_config(rawbase.write(folder, frames, config))


def test_an_as_of_with_an_implausible_churn_rate_is_an_error_naming_date_and_cause(tmp_path):
    assert build_dataset(_base_with_cutoff(tmp_path / "ok", closed_at_export=False)).labelled.churned.mean() < 0.05
    with pytest.raises(DataError, match=r"labels at as_of 2024-06-01: 100\.0% of 270 accounts churn in \[2024-06-01, 2024-07-01\) "
                                        r"against \d\.\d% \(median\) on the other dates; 270 of the 270 churns end on 2024-06-15: .*"
                                        r"set data_end to 2024-06-15 or earlier"):
        build_dataset(_base_with_cutoff(tmp_path / "cut", closed_at_export=True))
    accepted = build_dataset(_base_with_cutoff(tmp_path / "cut2", closed_at_export=True, check=False))
    assert accepted.frame[accepted.frame.as_of == D(2024, 6, 1)].churned.mean() > 0.9  # the user said so


def test_subscriptions_that_stop_early_stop_the_labels_with_a_note(tmp_path):
    frames = rawbase.tables()
    config = rawbase.config_dict() | {"data_end": "2024-09-01"}
    config["schedule"]["end"] = "2024-09-01"
    frames["subscriptions"] = frames["subscriptions"][frames["subscriptions"].start_date < D(2024, 6, 1)]
    frames["events"] = pd.concat([frames["events"], frames["events"].assign(event_date=D(2024, 8, 20))])
    ds = build_dataset(load_config(rawbase.write(tmp_path, frames, config)))
    assert any(n.startswith("labels stop at 2024-03-02: the subscriptions' latest start is 2024-03-01") for n in ds.spec.notes)
    # a 90-day window from the first as_of (Feb 1) already passes Mar 2: nothing can be labelled
    # (with data_end alone, Feb 1 - Jun 1 would have been, reading the export's end as "no churn")
    assert len(ds.frame) > 10 and ds.frame.churned.isna().all()


# --- a row that decides churn is never dropped on its own ------------------------------------------

def _churning_base(folder, policy: str | None = None, garble: int = 5):
    """300 accounts, every tenth churning in the first half of 2024; the end dates of `garble` churned
    accounts are written unreadably (the issue's case: they silently became "retained")."""
    _base_with_cutoff(folder, closed_at_export=False)
    subs = pd.read_parquet(folder / "subscriptions.parquet")
    subs["end_date"] = subs["end_date"].astype("string")
    churned = subs.index[subs["end_date"].notna()][1:garble + 1]  # not A000: its late start shows where the export ends
    subs.loc[churned, "end_date"] = "31/02/2024"
    subs.to_parquet(folder / "subscriptions.parquet")
    if policy:
        raw = yaml.safe_load((folder / "healthscore.yaml").read_text())
        raw["churn"]["unreadable_subscriptions"] = policy
        (folder / "healthscore.yaml").write_text(yaml.safe_dump(raw))
    return load_config(folder / "healthscore.yaml"), list(subs.loc[churned, "account_id"]), [i + 1 for i in churned]


def test_an_unreadable_cancellation_row_stops_the_build_naming_file_column_rows_and_accounts(tmp_path):
    config, accounts, rows = _churning_base(tmp_path)
    with pytest.raises(DataError) as err:
        build_dataset(config)
    message = str(err.value)
    assert "\n" not in message and "subscriptions.parquet" in message and "end_date not a date" in message
    assert f"row(s) {', '.join(map(str, rows))}" in message and f"of 5 account(s) ({', '.join(accounts)})" in message
    assert "churn.unreadable_subscriptions: drop_account" in message
    result = CliRunner().invoke(app, ["build-dataset", "--config", str(tmp_path / "healthscore.yaml"), "--out", str(tmp_path / "d.parquet")])
    assert result.exit_code == 2 and "end_date not a date" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.parquet").exists()


def test_accepting_the_loss_drops_those_accounts_whole_and_changes_no_other_label(tmp_path):
    clean = build_dataset(_base_with_cutoff(tmp_path / "clean", closed_at_export=False))
    config, accounts, _ = _churning_base(tmp_path / "garbled", "drop_account")
    ds = build_dataset(config)
    assert not set(accounts) & set(ds.frame["account_id"])  # in no label
    others = clean.frame[~clean.frame["account_id"].isin(accounts)]
    pd.testing.assert_frame_equal(ds.frame[["account_id", "as_of", "churned"]].sort_values(["account_id", "as_of"]).reset_index(drop=True),
                                  others[["account_id", "as_of", "churned"]].sort_values(["account_id", "as_of"]).reset_index(drop=True))
    dropped = ds.rejections[ds.rejections["code"] == "account_dropped"]
    assert set(dropped["account_id"]) == set(accounts) and set(dropped["table"]) == {"accounts", "events"}
    assert (dropped["reason"] == "account dropped: unreadable subscription row").all() and len(dropped) == 5 * 3  # 1 account + 2 events
    own = ds.rejections[ds.rejections["table"] == "subscriptions"]
    assert list(own["code"]) == ["not_a_date"] * 5  # the unreadable rows keep their own reason
    assert any(n.startswith("subscriptions: 5 account(s) left out whole (churn.unreadable_subscriptions: drop_account)")
               for n in ds.spec.notes)


def test_a_subscriptions_row_without_an_account_id_stops_even_when_accounts_may_be_dropped(tmp_path):
    config, _, _ = _churning_base(tmp_path, "drop_account", garble=0)
    subs = pd.read_parquet(tmp_path / "subscriptions.parquet")
    subs.loc[3, "account_id"] = None
    subs.to_parquet(tmp_path / "subscriptions.parquet")
    with pytest.raises(DataError, match=r"1 row\(s\) with no account id cannot be used.*account_id missing value: row\(s\) 4; "
                                        r"their accounts cannot be told"):
        build_dataset(config)


def test_dates_before_the_floor_are_rejected_with_their_reason(tmp_path):
    frames = rawbase.tables()
    frames["events"].loc[3, "event_date"] = D(1900, 1, 1)
    frames["invoices"].loc[0, "paid_at"] = D(1970, 1, 1)
    ds = build_dataset(load_config(rawbase.write(tmp_path, frames)))
    floor = ds.rejections[ds.rejections["code"] == "before_date_floor"].set_index(["table", "row"])
    assert set(floor.index) == {("events", 4), ("invoices", 1)}
    assert floor.loc[("events", 4), "reason"] == "dated before the date floor (1990-01-01): a placeholder, not history (date_floor)"
    later = rawbase.config_dict() | {"date_floor": "2024-01-15"}  # configurable; a start before it decides churn: it stops
    with pytest.raises(DataError, match=r"3 row\(s\) of 3 account\(s\) \(A1, A2, A4\) cannot be used.*start_date dated before "
                                        r"the date floor \(2024-01-15\).*: row\(s\) 1, 2, 5"):
        build_dataset(load_config(rawbase.write(tmp_path, frames, later)))


# --- metric SQL is data, not code -----------------------------------------------------------------

HOSTILE = [
    "event_type IN (SELECT column0 FROM read_csv('/etc/passwd'))",
    "true; COPY (SELECT 1) TO 'pwned.csv'",
    "true; DROP TABLE src_events",
    "getenv('HOME') = 'x'",
]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_hostile_filter_is_refused_at_load_with_one_line_naming_the_metric(tmp_path, hostile):
    config = rawbase.config_dict()
    config["metrics"] = {"add": [{"code": "sneaky_30d", "label": "Sneaky", "source": "events", "aggregation": "count",
                                  "filter": hostile, "window_days": 30, "family": "usage_decline"}]}
    path = rawbase.write(tmp_path, config=config)
    with pytest.raises(ConfigError, match=r"healthscore\.yaml: metrics: metric 'sneaky_30d' filter: ") as err:
        load_config(path)
    assert "\n" not in str(err.value)
    result = CliRunner().invoke(app, ["build-dataset", "--config", str(path), "--out", str(tmp_path / "d.parquet")])
    assert result.exit_code == 2 and "metric 'sneaky_30d' filter" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "d.parquet").exists() and not list(tmp_path.rglob("pwned.csv"))


def test_metric_sql_is_normalised_before_it_is_spliced(tmp_path):
    config = rawbase.config_dict()
    config["metrics"] = {"add": [{"code": "reports_30d", "label": "Reports", "source": "events", "aggregation": "sum",
                                  "value": "Quantity -- a comment", "filter": "event_type = 'reports' /* c */", "window_days": 30,
                                  "family": "usage_decline"}], "unusable": "drop"}
    metric = load_config(rawbase.write(tmp_path, config=config)).catalogue().get("reports_30d")
    assert (metric.value, metric.filter) == ("quantity", "event_type = 'reports'")


def test_the_metric_connection_cannot_touch_the_file_system_after_loading(tmp_path):
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    loaded = load_sources(load_config(rawbase.write(tmp_path / "base")))
    assert loaded.con.execute("SELECT count(*) FROM src_events").fetchone()[0] > 0  # the sources still read
    with pytest.raises(duckdb.PermissionException):
        loaded.con.execute(f"SELECT * FROM read_csv('{secret}')")
    with pytest.raises(duckdb.PermissionException):
        loaded.con.execute(f"COPY (SELECT 1) TO '{tmp_path / 'out.csv'}'")
    with pytest.raises(duckdb.InvalidInputException, match="locked"):
        loaded.con.execute("SET enable_external_access = true")
    assert not (tmp_path / "out.csv").exists()


def test_extra_columns_become_metrics_and_a_metric_sql_error_names_the_metric(tmp_path):
    frames = rawbase.tables()
    frames["accounts"]["Employees"] = [10, 500, 12, 80]
    config = rawbase.config_dict()
    config["sources"]["accounts"] |= {"columns": {"employees": "Employees"}, "extra_columns": {"employees": "number"}}
    config["metrics"] = {"add": [{"code": "employees", "label": "Employees", "source": "accounts", "aggregation": "attribute",
                                  "value": "employees", "family": "contract_plan"}], "unusable": "drop"}
    ds = build_dataset(load_config(rawbase.write(tmp_path, frames, config)))
    assert ds.frame.set_index("account_id").loc["A2", "employees"].iloc[0] == 500
    config["metrics"]["add"][0]["value"] = "employees * headcount"
    with pytest.raises(ConfigError, match=r"metric 'employees' value: unknown column 'headcount'"):
        load_config(rawbase.write(tmp_path, frames, config))
    # SQL that passes the check but DuckDB cannot run (text plus a number): one line, the metric, its SQL
    config["metrics"]["add"][0] |= {"value": "name + 1"}
    with pytest.raises(DataError, match=r"metric\(s\) employees: DuckDB cannot run the generated SQL: .*; the SQL: SELECT "):
        build_dataset(load_config(rawbase.write(tmp_path, frames, config)))


def test_rejections_are_bounded_with_counts_and_complete_on_request(tmp_path):
    frames = rawbase.tables()
    frames["events"].loc[:40, "quantity"] = -1  # 41 negative counts
    config = load_config(rawbase.write(tmp_path, frames))
    sampled = load_sources(config, sample=10)
    assert (sampled.rejections["code"] == "negative").sum() == 10
    counts = sampled.rejection_counts.set_index("code")["rows"]
    assert counts["negative"] == 41
    assert "events.quantity: negative value: 41 rows rejected, the first 10 listed" in sampled.notes
    assert (load_sources(config, sample=None).rejections["code"] == "negative").sum() == 41
