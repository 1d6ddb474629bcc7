"""The CSM report: built from real scores of a small demo (generated, trained and scored twice in a
temp project), written as one HTML file and opened from disk in headless Chromium with no
network, as a CSM would; 20,000 accounts for speed; the KPI formulas on a tiny hand-made history.

The browser is Debian's chromium + chromium-driver (scripts/install-browser.sh): without it these
tests fail, they are not skipped, because the page is the product.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from healthscore.cli import app
from healthscore.cli.report import report_cmd
from healthscore.dataset import FeatureSpec
from healthscore.errors import BrowserMissing
from healthscore.history.store import record_run
from healthscore.report import build as build_module
from healthscore.report import build_report, write_report
from healthscore.report.browser import console_errors, open_browser
from healthscore.report.build import _details, reason_families
from healthscore.report.inputs import read_runs
from healthscore.report.kpis import kpis
from healthscore.report.playbooks import load_playbooks
from healthscore.scores_file import SCORE_COLUMNS

FIRST, LATEST = "2025-12-01", "2026-01-01"


def run(application: typer.Typer, *args: str):
    return CliRunner().invoke(application, list(args))


def report_app() -> typer.Typer:
    """`report_cmd` on its own (the main app registers it the same way)."""
    application = typer.Typer()
    application.callback()(lambda: None)
    application.command("report")(report_cmd)
    return application


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """A small demo base, a model trained on it and two scoring runs recorded in a history."""
    folder = tmp_path_factory.mktemp("report-project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        data = folder / "demo"
        assert run(app, "generate", "--out", str(data), "--accounts", "800").exit_code == 0
        built = run(app, "build-dataset", "--config", str(data / "healthscore.yaml"), "--out", str(data / "dataset.parquet"))
        assert built.exit_code == 0, built.output
        trained = run(app, "train", "--config", str(data / "healthscore.yaml"), "--dataset", str(data / "dataset.parquet"))
        # exit 1 = exported but not better than the logistic baseline on so small a base: fine for a report
        assert trained.exit_code in (0, 1) and (folder / "models" / "customer-health" / "v1").is_dir(), trained.output
        for as_of in (FIRST, LATEST):
            scored = run(app, "score", "--config", str(data / "healthscore.yaml"), "--as-of", as_of,
                         "--model", "models/customer-health/v1", "--out", str(data / f"scores-{as_of}.parquet"),
                         "--history", str(data / "scores.duckdb"))
            assert scored.exit_code == 0, scored.output
        yield folder, data


@pytest.fixture(scope="module")
def report(demo):
    folder, data = demo
    made = run(report_app(), "report", "--scores", str(data / f"scores-{LATEST}.parquet"), "--history", str(data / "scores.duckdb"),
               "--out", str(folder / "out" / "report.html"), "--csv", str(folder / "out" / "accounts.csv"))
    assert made.exit_code == 0, made.output
    return folder / "out" / "report.html", folder / "out" / "accounts.csv"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    try:
        driver = open_browser(tmp_path_factory.mktemp("chromium-profile"))
    except BrowserMissing as exc:
        pytest.fail(f"no browser for the report tests: {exc}")
    yield driver
    driver.quit()


def load(driver, page) -> float:
    """Open the report from disk; returns the milliseconds until the page had drawn everything."""
    driver.get(page.resolve().as_uri())
    ready = driver.execute_script("return document.body.dataset.ready")
    assert ready == "true", "the report's script did not finish"
    return driver.execute_script("return performance.getEntriesByType('navigation')[0].loadEventEnd")


def choose(driver, select_id: str, value: str) -> float:
    """Pick a filter option as a user would (a change event); returns how long the page took, in ms."""
    return driver.execute_script("""
        const select = document.getElementById(arguments[0]), t0 = performance.now();
        select.value = arguments[1];
        select.dispatchEvent(new Event('change'));
        return performance.now() - t0;""", select_id, value)


def shown_count(driver) -> int:
    return int(driver.execute_script("return document.getElementById('row-count').dataset.count"))


def test_report_files(demo, report):
    _, data = demo
    page, csv = report
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet")
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "default-src 'none'" in html
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html
    exported = pd.read_csv(csv, dtype={"account_id": str})
    assert len(exported) == len(scores) and exported["account_id"].is_unique
    both = scores.merge(exported, on="account_id", suffixes=("", "_csv"))
    assert len(both) == len(scores) and both["reason_1_text"].fillna("").eq(both["reason_1_text_csv"].fillna("")).all()
    assert exported["next_action"].notna().all() and {"reason_3_action", "strength_1_text", "revenue_at_risk"} <= set(exported)
    assert not [p.name for p in page.parent.iterdir() if p.name.startswith(".")]  # atomic writes leave no temp files


def test_report_in_the_browser(demo, report, browser, tmp_path):
    _, data = demo
    page, _ = report
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet")
    first = pd.read_parquet(data / f"scores-{FIRST}.parquet")
    load(browser, page)
    assert console_errors(browser) == []
    assert browser.execute_script("return location.protocol") == "file:"
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0  # nothing fetched

    # every colour swatch has its tier's name beside it
    labels = {"Healthy", "At risk", "Unhealthy"}
    beside = browser.execute_script("return [...document.querySelectorAll('.swatch')].map(s => s.parentElement.textContent)")
    assert beside and all(any(label in text for label in labels) for text in beside)

    # the period KPIs from the history: previous run vs latest run
    lost = len(set(first["account_id"]) - set(scores["account_id"]))
    new = len(set(scores["account_id"]) - set(first["account_id"]))
    kpi = lambda key: browser.execute_script(f"return document.querySelector('[data-kpi={key}] .value').textContent")  # noqa: E731
    assert kpi("churn_rate") == f"{100 * lost / len(first):.1f}%"
    assert kpi("crr") == f"{100 * (len(scores) - new) / len(first):.1f}%"
    assert kpi("accounts") == f"{len(scores):,}"

    unhealthy = scores[scores["tier"] == "unhealthy"]
    choose(browser, "filter-tier", "unhealthy")
    assert shown_count(browser) == len(unhealthy)
    tiers_shown = browser.execute_script(
        "return [...document.querySelectorAll('#table-body tr.row td:nth-child(4)')].map(td => td.textContent)")
    assert tiers_shown and set(tiers_shown) == {"Unhealthy"}

    row = browser.find_element("css selector", "#table-body tr.row")
    account = scores.set_index("account_id").loc[row.get_attribute("data-id")]
    row.click()
    assert browser.find_element("id", "detail").is_displayed()
    assert abs(float(browser.find_element("id", "detail-score").text) - account["health_score"]) <= 0.05 + 1e-9
    first_reason = browser.find_element("css selector", "#detail-reasons li").text
    assert first_reason == account["reason_1_text"]
    assert browser.find_element("id", "detail-waterfall") and browser.find_element("id", "detail-history")
    assert len(browser.find_elements("css selector", "#detail-actions li")) >= 1
    browser.save_screenshot(str(tmp_path / "report-detail.png"))
    browser.find_element("id", "detail-close").click()
    assert not browser.find_element("id", "detail").is_displayed()

    movement_tabs = browser.find_elements("css selector", "#movement-body [role=tab]")
    assert len(movement_tabs) == 3
    browser.save_screenshot(str(tmp_path / "report.png"))
    assert (tmp_path / "report.png").stat().st_size > 10_000
    assert console_errors(browser) == []


def test_account_data_cannot_inject_markup(demo, browser, tmp_path):
    """Names are data: a name that closes the script element stays a name, a formula stays text."""
    _, data = demo
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet")
    evil = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    scores.loc[0, "account_name"] = evil
    scores.loc[0, "csm_owner"] = "=HYPERLINK(\"http://example.invalid\")"
    scores.to_parquet(tmp_path / "evil.parquet", index=False)
    page = write_report(tmp_path / "evil.parquet", tmp_path / "evil.html", csv=tmp_path / "evil.csv")
    assert evil not in page.read_text()

    load(browser, page)
    assert browser.execute_script("return window.pwned") is None
    browser.execute_script("""const q = document.getElementById('filter-text');
        q.value = arguments[0]; q.dispatchEvent(new Event('input'));""", scores.loc[0, "account_id"])
    assert shown_count(browser) == 1
    assert browser.find_element("css selector", "#table-body tr.row td").text.startswith(evil)
    assert "needs a score history" in browser.find_element("css selector", "[data-kpi=churn_rate]").text
    assert console_errors(browser) == []
    exported = pd.read_csv(tmp_path / "evil.csv", dtype=str)
    assert exported.loc[0, "csm_owner"].startswith("'=")


def test_twenty_thousand_accounts_stay_fast(demo, browser, tmp_path):
    _, data = demo
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet")
    copies = -(-20_000 // len(scores))
    big = pd.concat([scores.assign(account_id=scores["account_id"] + f"-{k}") for k in range(copies)], ignore_index=True)
    big = big.head(20_000)
    big.to_parquet(tmp_path / "big.parquet", index=False)
    started = time.perf_counter()
    page = write_report(tmp_path / "big.parquet", tmp_path / "big.html")
    built = time.perf_counter() - started

    loaded_ms = load(browser, page)
    filter_ms = choose(browser, "filter-tier", "unhealthy")
    assert shown_count(browser) == (big["tier"] == "unhealthy").sum()
    search_ms = browser.execute_script("""const q = document.getElementById('filter-text'), t0 = performance.now();
        q.value = 'acc-0001'; q.dispatchEvent(new Event('input')); return performance.now() - t0;""")
    sort_ms = browser.execute_script("""const t0 = performance.now();
        document.querySelector('#table-head th[data-key=score] button').click(); return performance.now() - t0;""")
    rows_in_dom = browser.execute_script("return document.querySelectorAll('#table-body tr.row').length")
    last_drawn = browser.execute_async_script("""
        const done = arguments[arguments.length - 1], wrap = document.getElementById('table-wrap');
        wrap.scrollTop = wrap.scrollHeight;
        requestAnimationFrame(() => requestAnimationFrame(() => {
            const rows = document.querySelectorAll('#table-body tr.row');
            done(rows[rows.length - 1].dataset.id);
        }));""")
    chosen = big[(big["tier"] == "unhealthy") & big["account_id"].str.lower().str.contains("acc-0001")]
    lowest = chosen[chosen["health_score"].round(2) == chosen["health_score"].round(2).min()]
    assert last_drawn == lowest["account_id"].iloc[-1]  # scrolled to the end: the lowest score, ties in file order
    print(f"\n20,000 accounts: built in {built:.1f} s, {page.stat().st_size / 1e6:.1f} MB; page loaded in {loaded_ms:.0f} ms, "
          f"tier filter {filter_ms:.0f} ms, search {search_ms:.0f} ms, sort {sort_ms:.0f} ms")
    assert console_errors(browser) == []
    assert rows_in_dom < 200  # rows are drawn as they scroll into view
    assert loaded_ms < 5_000 and max(filter_ms, search_ms, sort_ms) < 2_000


def test_report_command_fails_clearly(tmp_path):
    missing = run(report_app(), "report", "--scores", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "r.html"))
    assert missing.exit_code == 2 and "no such scores file" in " ".join(missing.output.split())
    assert not (tmp_path / "r.html").exists()


# --- KPI formulas on a tiny hand-made history ----------------------------------------------------
def scores_file(path, as_of: str, mrr: dict[str, float]):
    """A minimal valid scores file: one account per entry of `mrr`."""
    rows = []
    for account_id, value in mrr.items():
        row = dict.fromkeys(SCORE_COLUMNS)
        row.update(account_id=account_id, as_of=dt.date.fromisoformat(as_of), churn_probability=0.1, health_score=90.0,
                   health_percentile=50.0, tier="at_risk", tier_color="yellow", baseline_score=90.0, contributions="{}",
                   metric_values=json.dumps({"mrr": value}), model_name="m", model_version="1", model_run_id="r",
                   scored_at=f"{as_of}T06:00:00+00:00")
        rows.append(row)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture
def tiny_history(tmp_path):
    db = tmp_path / "h.duckdb"
    runs = {"2025-10-01": {"a": 50.0, "b": 100.0, "c": 200.0, "e": 10.0},
            "2025-11-01": {"a": 50.0, "b": 100.0, "c": 200.0},  # e lost
            "2025-12-01": {"b": 150.0, "c": 180.0, "d": 70.0}}  # a lost, d new, b +50, c -20
    for as_of, mrr in runs.items():
        record_run(db, scores_file(tmp_path / f"{as_of}.parquet", as_of, mrr), {}, [])
    return db


def test_kpis_of_the_latest_period(tiny_history):
    runs = read_runs(tiny_history, dt.date(2025, 12, 1))
    runs["as_of"] = pd.to_datetime(runs["as_of"]).dt.date
    start = runs[runs["as_of"] == dt.date(2025, 11, 1)]  # the previous run, not the first
    end = runs[runs["as_of"] == dt.date(2025, 12, 1)].assign(churn_probability=[0.1, 0.5, 0.2])
    found = kpis(end, start)
    assert found["accounts_start"] == 3 and found["accounts"] == 3
    assert found["lost_accounts"] == 1 and found["new_accounts"] == 1
    assert found["churn_rate"] == pytest.approx(1 / 3)
    assert found["crr"] == pytest.approx((3 - 1) / 3 * 100)
    assert found["mrr"] == 400.0 and found["mrr_start"] == 350.0 and found["arpa"] == pytest.approx(400 / 3)
    assert found["expansion_mrr"] == 50.0  # b's increase; c's decrease and d's new revenue are not expansion
    assert found["revenue_at_risk"] == pytest.approx(150 * 0.1 + 180 * 0.5 + 70 * 0.2)


def test_kpis_without_a_previous_run():
    found = kpis(pd.DataFrame({"account_id": ["a", "b"], "mrr": [10.0, None], "churn_probability": [0.5, 0.5]}))
    assert found["mrr"] == 10.0 and found["arpa"] == 5.0 and found["revenue_at_risk"] == 5.0
    assert found["churn_rate"] is None and found["crr"] is None and found["expansion_mrr"] is None


def test_history_limits_the_report_to_the_runs_before_its_date(tiny_history):
    runs = read_runs(tiny_history, dt.date(2025, 11, 1))
    assert sorted(pd.to_datetime(runs["as_of"]).dt.date.unique()) == [dt.date(2025, 10, 1), dt.date(2025, 11, 1)]


def test_every_history_point_carries_its_model_so_the_chart_marks_a_new_one(tmp_path):
    """An account's score history names the model of each run (the chart draws a mark where it
    changes): a new model must never pass for a change in the account."""
    db = tmp_path / "h.duckdb"
    for as_of, version in (("2025-10-01", "1"), ("2025-11-01", "1"), ("2025-12-01", "2")):
        path = scores_file(tmp_path / f"{as_of}.parquet", as_of, {"a": 10.0})
        frame = pd.read_parquet(path).assign(model_version=version)
        frame.to_parquet(path, index=False)
        record_run(db, path, {}, [])
    runs = read_runs(db, dt.date(2025, 12, 1))
    accounts = pd.DataFrame({"account_id": ["a"], **{f"{side}_{k}_{part}": [float("nan") if part == "points" else None]
                                                       for side in ("reason", "strength") for k in (1, 2, 3)
                                                       for part in ("text", "points", "family")}})
    details = _details(accounts, pd.Series([50.0]), pd.DataFrame(index=[0]), pd.DataFrame(index=[0]), [], runs)
    assert [point[3] for point in details["history"][0]] == ["m v1", "m v1", "m v2"]
    script = (Path(build_module.__file__).parent / "report.js").read_text()
    assert 'class: "model-change"' in script and "new model: ${model}" in script


# --- playbooks and reason families ---------------------------------------------------------------
def test_playbooks_are_the_shipped_ones_overridden_key_by_key(tmp_path):
    shipped = load_playbooks()
    assert {"low_licence_utilisation", "late_payments", "support_escalations", "usage_decline", "poor_onboarding",
            "low_nps", "disengagement", "contract_plan", "high_health", "default"} <= set(shipped)
    (tmp_path / "mine.yaml").write_text("late_payments: Call the CFO\nsecurity_review: Send the SOC 2 report\n")
    mine = load_playbooks(tmp_path / "mine.yaml")
    assert mine["late_payments"] == "Call the CFO" and mine["security_review"] == "Send the SOC 2 report"
    assert mine["low_nps"] == shipped["low_nps"]
    (tmp_path / "bad.yaml").write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="mapping of driver family"):
        load_playbooks(tmp_path / "bad.yaml")


def test_reason_codes_map_to_the_longest_matching_metric():
    features = [FeatureSpec(code="nps", label="NPS", family="low_nps"),
                FeatureSpec(code="nps_latest", label="Latest NPS", family="disengagement"),
                FeatureSpec(code="plan", label="Plan", kind="categorical", family="contract_plan")]
    codes = pd.Series(["NPS_LATEST_LOW", "NPS_HIGH", "PLAN_ENTERPRISE", None, "UNKNOWN_LOW"])
    families = reason_families(codes, features)
    assert families.drop(index=3).tolist() == ["disengagement", "low_nps", "contract_plan", "default"]
    assert pd.isna(families[3])  # no reason, no family


def test_build_report_notes_what_needs_a_history(demo):
    _, data = demo
    built = build_report(data / f"scores-{LATEST}.parquet")
    assert built.payload["kpis"]["churn_rate"] is None and built.payload["movement"] is None
    assert any("--history" in note for note in built.notes)


def test_csv_scores_give_the_same_report(demo, tmp_path):
    _, data = demo
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet")
    scores["account_id"] = "00" + scores["account_id"].str[-4:]  # ids a CSV reader would turn into numbers
    scores.to_parquet(tmp_path / "s.parquet", index=False)
    scores.to_csv(tmp_path / "s.csv", index=False)
    from_parquet, from_csv = build_report(tmp_path / "s.parquet"), build_report(tmp_path / "s.csv")
    assert from_csv.payload["accounts"]["id"] == from_parquet.payload["accounts"]["id"] == scores["account_id"].tolist()
    assert from_csv.payload["kpis"] == pytest.approx(from_parquet.payload["kpis"])


def test_the_model_must_be_the_one_that_scored(demo, tmp_path):
    _, data = demo
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet").assign(model_version="7")
    scores.to_parquet(tmp_path / "v7.parquet", index=False)
    with pytest.raises(ValueError, match="pass the right one with --model"):
        build_report(tmp_path / "v7.parquet")
    with pytest.raises(ValueError, match="scores were made by customer-health version 7"):
        build_report(tmp_path / "v7.parquet", model="models/customer-health/v1")


def test_the_quality_panel_shows_the_published_backtest(demo, report, browser):
    """"How good is this score": the model's own backtest, one row per date, and a bar per tier and date."""
    folder, _ = demo
    page, _ = report
    backtest = json.loads((folder / "models" / "customer-health" / "v1" / "model.json").read_text())["backtest"]
    assert len(backtest) == 3
    load(browser, page)
    cells = browser.execute_script(
        "return [...document.querySelectorAll('#quality table.backtest tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
    assert [c[0] for c in cells] == [row["as_of"] for row in backtest]
    assert [c[2] for c in cells] == [f"{row['roc_auc']:.3f}" for row in backtest]
    assert [c[-2] for c in cells] == [f"{100 * row['unhealthy_recall']:.0f}%" for row in backtest]
    assert len(browser.find_elements("css selector", "#quality svg rect")) == 3 * len(backtest)


def test_csm_tier_and_forecast_panel(demo, browser, tmp_path):
    """An override shows beside the model's tier (table and CSV); the forecast files draw the panel."""
    import shutil

    from healthscore.history.overrides import record_override
    from healthscore.model.forecast import accounts_path_for, backtest_path_for

    _, data = demo
    history = shutil.copy(data / "scores.duckdb", tmp_path / "scores.duckdb")
    scores = pd.read_parquet(data / f"scores-{LATEST}.parquet")
    target = scores.iloc[0]
    csm = "healthy" if target["tier"] != "healthy" else "unhealthy"
    record_override(history, target["account_id"], csm, "competitor", "Kim", until="2999-01-01")
    as_of = dt.date.fromisoformat(LATEST)
    month = {"as_of": as_of, "by": "all", "group": "all", "mrr_start": 1000.0, "expected_churned_mrr": 40.0, "churned_mrr_low80": 10.0,
             "churned_mrr_high80": 80.0, "grr": 0.96, **{f"retained_mrr_{s}{lv}": v for lv, (lo, hi) in {80: (930, 990), 95: (900, 995)}.items()
                                                          for s, v in (("low", lo), ("high", hi))}}
    forecast = pd.DataFrame([month | {"period_kind": "month", "period": "2026-01", "expected_retained_mrr": 960.0},
                             month | {"period_kind": "month", "period": "2026-02", "expected_retained_mrr": 930.0},
                             month | {"period_kind": "quarter", "period": "Q1", "expected_retained_mrr": 930.0}])
    path = tmp_path / "forecast.parquet"
    forecast.to_parquet(path)
    pd.DataFrame({"account_id": [target["account_id"], "X-9"], "account_name": ["Near", "Far"], "mrr": [500.0, 900.0],
                  "next_renewal": [as_of + dt.timedelta(days=20), as_of + dt.timedelta(days=200)],
                  "churn_before_renewal": [0.3, 0.9], "reason_1_text": ["Logins 2 (lower than 90% of accounts): -9 points", None]}
                 ).to_parquet(accounts_path_for(path))
    pd.DataFrame({"as_of": [as_of], "expected_churned_mrr": [40.0], "churned_mrr_low80": [10.0], "churned_mrr_high80": [80.0],
                  "actual_churned_mrr": [50.0], "inside80_churned_mrr": [True], "inside95_churned_mrr": [True]}).to_parquet(backtest_path_for(path))
    page = write_report(data / f"scores-{LATEST}.parquet", tmp_path / "r.html", history=history, csv=tmp_path / "a.csv", forecast=path)

    exported = pd.read_csv(tmp_path / "a.csv", dtype={"account_id": str}).set_index("account_id")
    assert exported.loc[target["account_id"], "tier"] == target["tier"] and exported.loc[target["account_id"], "csm_tier"] == csm
    assert exported.loc[target["account_id"], "csm_reason"] == "competitor" and not exported.loc[target["account_id"], "csm_expired"]
    assert exported["csm_tier"].notna().sum() == 1

    load(browser, page)
    assert console_errors(browser) == []
    browser.execute_script("document.getElementById('filter-text').value = arguments[0];"
                           "document.getElementById('filter-text').dispatchEvent(new Event('input'))", target["account_id"])
    cells = browser.execute_script("return [...document.querySelectorAll('#table-body tr.row')].map(r => "
                                   "[r.dataset.id, r.children[3].textContent, r.querySelector('[data-csm]')?.dataset.csm])")
    assert [target["account_id"], {"healthy": "Healthy", "at_risk": "At risk", "unhealthy": "Unhealthy"}[target["tier"]], csm] in cells
    assert browser.find_element("id", "forecast").is_displayed() and browser.find_element("id", "forecast-chart")
    renewals = browser.execute_script("return [...document.querySelectorAll('#forecast-renewals tbody tr')].map(r => r.textContent)")
    assert len(renewals) == 1 and "Logins 2" in renewals[0] and "30.0%" in renewals[0]  # the far renewal is not within 90 days
    assert len(browser.find_elements("css selector", "#forecast-backtest tbody tr")) == 1
    assert console_errors(browser) == []
