"""The renewal and revenue forecast: the simulated intervals against exact enumeration (with and
without a shared month effect), the month effect's estimate, the hazard composition and contract clock, and the forecast command on a small generated base with
its backtest recomputed here from the raw subscriptions."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from healthscore.cli import app
from healthscore.config import add_months, load_config
from healthscore.demo import generate_demo
from healthscore.forecasting import BACKTEST_MONTHS, forecast_revenue
from healthscore.model import forecast as fc
from healthscore.report.forecast import forecast_panel

START = dt.date(2024, 1, 1)


def enumerated(p: np.ndarray, w: np.ndarray, effects: np.ndarray) -> dict[float, float]:
    """The exact distribution of sum_i w_i B_i, B_i ~ Bernoulli(min(1, z p_i)) independent given
    the shared effect z, mixed over `effects` (equally likely values of z): every outcome of the
    accounts enumerated, for each z."""
    outcomes = np.array(list(itertools.product([0, 1], repeat=len(p))), dtype=float)
    pz = np.minimum(np.outer(effects, p), 1.0)  # (effects, accounts)
    prob = np.ones((len(outcomes), len(effects)))
    for i in range(len(p)):
        prob *= np.where(outcomes[:, [i]] == 1, pz[:, i], 1 - pz[:, i])
    prob = prob.mean(axis=1)
    totals = np.round(outcomes @ w, 9)
    return pd.Series(prob).groupby(totals).sum().to_dict()


def quantile_of(dist: dict[float, float], level: float) -> float:
    """The smallest value whose cumulative probability reaches `level`."""
    values = sorted(dist)
    cdf = np.cumsum([dist[v] for v in values])
    return values[int(np.searchsorted(cdf, level - 1e-12))]


def check_against_exact(p: np.ndarray, w: np.ndarray, dispersion: float, exact: dict[float, float]) -> None:
    draws = fc.simulate_totals(p[:, None], w[:, None], dispersion)[:, 0, 0]
    values, counts = np.unique(np.round(draws, 9), return_counts=True)
    simulated = dict(zip(values, counts / len(draws)))
    for value, prob in exact.items():  # every outcome's probability, within 4.5 standard errors
        assert simulated.get(value, 0.0) == pytest.approx(prob, abs=4.5 * np.sqrt(prob * (1 - prob) / len(draws)) + 1e-12)
    summary = fc.sum_summary(float(p @ w), draws, "x")
    for level, (lo, hi) in fc.INTERVALS.items():
        for side, q in (("low", lo), ("high", hi)):  # the quantile itself, unless the level sits on a step of the cdf
            cdf_below = sum(v for k, v in exact.items() if k < summary[f"x_{side}{level}"])
            cdf_at = cdf_below + exact.get(summary[f"x_{side}{level}"], 0.0)
            assert cdf_below - 0.01 <= q <= cdf_at + 0.01
            assert summary[f"x_{side}{level}"] == quantile_of(exact, q) or abs(cdf_at - q) < 0.01 or abs(cdf_below - q) < 0.01


P_SMALL = np.array([0.1, 0.35, 0.5, 0.02, 0.9, 0.25, 0.6, 0.05, 0.15, 0.3])
W_SMALL = np.array([3.0, 1.0, 7.0, 12.0, 2.0, 5.0, 1.0, 9.0, 4.0, 6.5])


def test_simulated_intervals_match_enumeration_without_a_month_effect():
    check_against_exact(P_SMALL, W_SMALL, 0.0, enumerated(P_SMALL, W_SMALL, np.ones(1)))


def test_simulated_intervals_match_the_exact_mixture_over_the_month_effect():
    """With a shared month effect (Gamma, mean 1, variance 0.4) the simulation against the exact
    distribution: enumeration given the effect, mixed over 4,000 equally likely effects (the
    Gamma's quantiles at the centres of 4,000 equal slices of probability)."""
    from scipy.stats import gamma

    dispersion = 0.4
    effects = gamma.ppf((np.arange(4000) + 0.5) / 4000, a=1 / dispersion, scale=dispersion)
    exact = enumerated(P_SMALL, W_SMALL, effects)
    independent = enumerated(P_SMALL, W_SMALL, np.ones(1))
    check_against_exact(P_SMALL, W_SMALL, dispersion, exact)
    spread = {name: sum(prob * (v - P_SMALL @ W_SMALL) ** 2 for v, prob in dist.items())
              for name, dist in (("mixed", exact), ("independent", independent))}
    assert spread["mixed"] > spread["independent"]  # the shared effect widens the distribution


def test_month_effects_keep_the_expected_churn_and_widen_each_month():
    """Independent month effects with mean 1 leave each month's expected churn as the composed
    hazards say, and each month's total swings more than independent accounts' would."""
    rng = np.random.default_rng(1)
    h = rng.beta(1, 20, size=(300, 3))
    w = np.column_stack([rng.lognormal(6, 1, size=300), np.ones(300)])
    totals = fc.simulate_totals(h, w, 0.2)
    expected = fc.month_probabilities(h).T @ w  # (months, columns)
    sd = totals.std(axis=0)
    np.testing.assert_array_less(np.abs(totals.mean(axis=0) - expected), 4.5 * sd / np.sqrt(len(totals)))
    counts = totals[:, :, 1]
    binomial = np.sqrt((fc.month_probabilities(h) * (1 - fc.month_probabilities(h))).sum(axis=0))
    assert np.all(counts.std(axis=0) > 1.3 * binomial)  # wider than independent accounts


def test_month_dispersion_recovers_the_variance_of_a_shared_effect():
    rng = np.random.default_rng(7)
    h = rng.beta(1, 40, size=2000)
    months = 600
    for variance in (0.0, 0.05, 0.2):
        z = np.ones(months) if variance == 0 else rng.gamma(1 / variance, variance, size=months)
        observed = (rng.random((months, len(h))) < np.minimum(np.outer(z, h), 1)).sum(axis=1)
        e, v = np.full(months, h.sum()), np.full(months, (h * (1 - h)).sum())
        assert fc.month_dispersion(observed, e, v) == pytest.approx(variance, abs=0.02)
    assert fc.month_dispersion([10, 12], [11, 11], [11, 11]) == 0.0  # no more swing than independence gives


def test_month_probabilities_compose_hazards():
    h = np.array([[0.1, 0.2, 0.5], [0.0, 1.0, 0.3]])
    q = fc.month_probabilities(h)
    np.testing.assert_allclose(q, [[0.1, 0.9 * 0.2, 0.9 * 0.8 * 0.5], [0.0, 1.0, 0.0]])
    assert np.all(q.sum(axis=1) <= 1)


def test_contract_clock_rolls_over_whole_terms():
    days = np.array([10.0, 10.0, 200.0, np.nan])
    term = fc.term_months(pd.Series(["annual", "monthly", "Yearly", "annual"]))
    assert term.tolist() == [12, 1, 12, 12]
    month = fc.DAYS_PER_MONTH
    ahead = fc.days_to_renewal_ahead(days, term, 1)
    np.testing.assert_allclose(ahead[:3], [10 - month + 12 * month, 10 - month + month, 200 - month])
    assert np.isnan(ahead[3])
    assert fc.renews_in_month(fc.days_to_renewal_ahead(days, term, 0))[:3].tolist() == [True, True, False]


@pytest.fixture(scope="module")
def base(project):
    folder = project / "base"
    generate_demo(folder, accounts=450, months=16, start=START, seed=5)
    return folder / "healthscore.yaml"


@pytest.fixture(scope="module")
def run(base, project):
    config = load_config(base)
    as_of = config.data_end
    return as_of, forecast_revenue(config, as_of, months=6, by="segment", output=project / "forecast.parquet")


def churned_in(subs: pd.DataFrame, start: dt.date, end: dt.date) -> pd.Series:
    """Per account active at `start`: its MRR then and whether its latest contract row ended in [start, end)."""
    known = subs[subs["start_date"] < start].sort_values(["account_id", "start_date"])
    mrr = known.groupby("account_id")["mrr"].last()
    # the latest row by start date; on a tie the open one (as build/labels.py)
    latest = subs.sort_values(["account_id", "start_date", "end_date"], na_position="last").drop_duplicates("account_id", keep="last")
    latest = latest.set_index("account_id")
    churn = latest["end_date"].reindex(mrr.index)
    active = churn.isna() | (churn >= start)
    churned = churn.notna() & (churn >= start) & (churn < end)
    return pd.DataFrame({"mrr": mrr, "churned": churned})[active]


def test_backtest_recomputed_from_the_subscriptions(run, base):
    as_of, result = run
    subs = pd.read_parquet(base.parent / "subscriptions.parquet")
    bt = result.backtest
    assert len(bt) >= 1
    for row in bt.itertuples():
        assert add_months(row.as_of, BACKTEST_MONTHS) <= as_of  # only what was known at as_of
        truth = churned_in(subs, row.as_of, add_months(row.as_of, BACKTEST_MONTHS))
        assert row.accounts == len(truth)
        assert row.mrr_start == pytest.approx(truth["mrr"].sum())
        assert row.actual_churned_accounts == truth["churned"].sum()
        assert row.actual_churned_mrr == pytest.approx(truth.loc[truth["churned"], "mrr"].sum())
        assert row.error_churned_mrr == pytest.approx(row.expected_churned_mrr - row.actual_churned_mrr)
        for level in fc.INTERVALS:
            inside = row._asdict()[f"churned_mrr_low{level}"] <= row.actual_churned_mrr <= row._asdict()[f"churned_mrr_high{level}"]
            assert row._asdict()[f"inside{level}_churned_mrr"] == inside
    summary = result.backtest_summary()
    assert summary["coverage80_churned_mrr"] == pytest.approx(bt["inside80_churned_mrr"].mean())
    assert summary["mean_abs_error_churned_accounts"] == pytest.approx((bt["expected_churned_accounts"] - bt["actual_churned_accounts"]).abs().mean())


def test_forecast_table_adds_up(run, base, project):
    as_of, result = run
    table, accounts = result.forecast, result.accounts
    subs = pd.read_parquet(base.parent / "subscriptions.parquet")
    active = churned_in(subs, as_of, add_months(as_of, 99))
    assert set(accounts["account_id"]) == set(active.index)  # every active account, none other
    whole = table[table["by"] == "all"].set_index("period")
    months = whole[whole["period_kind"] == "month"]
    assert len(months) == 6 and list(whole[whole["period_kind"] == "quarter"].index) == ["Q1", "Q2"]
    assert whole["mrr_start"].iloc[0] == pytest.approx(accounts["mrr"].sum())
    month_columns = [f"churn_month_{k}" for k in range(1, 7)]
    for k, (period, row) in enumerate(months.iterrows()):
        assert period == add_months(as_of, k).strftime("%Y-%m")
        assert row.expected_churned_mrr == pytest.approx((accounts["mrr"] * accounts[month_columns[k]]).sum())
        assert row.expected_churned_accounts == pytest.approx(accounts[month_columns[k]].sum())
        lost = (accounts["mrr"] * accounts[month_columns[: k + 1]].sum(axis=1)).sum()
        assert row.expected_retained_mrr == pytest.approx(row.mrr_start - lost)
        assert row.grr == pytest.approx(row.expected_retained_mrr / row.mrr_start)
        assert row.churned_mrr_low95 <= row.churned_mrr_low80 <= row.expected_churned_mrr <= row.churned_mrr_high80 <= row.churned_mrr_high95
        assert row.grr_low95 <= row.grr_low80 <= row.grr <= row.grr_high80 <= row.grr_high95
    q1 = whole.loc["Q1"]
    assert q1.expected_churned_mrr == pytest.approx(months["expected_churned_mrr"].iloc[:3].sum())
    assert q1.expected_retained_mrr == pytest.approx(months["expected_retained_mrr"].iloc[2])
    # segments partition the base
    segments = table[(table["by"] == "segment") & (table["period"] == "Q1")]
    assert segments["expected_churned_mrr"].sum() == pytest.approx(q1.expected_churned_mrr)
    assert segments["accounts_active"].sum() == q1.accounts_active
    # an annual account's churn before renewal sums the months up to its renewal
    annual = accounts[(accounts["term"] == "annual") & accounts["churn_before_renewal"].notna()].iloc[0]
    renewal_month = next(k for k in range(6) if add_months(as_of, k + 1) > annual["next_renewal"])
    assert annual["churn_before_renewal"] == pytest.approx(sum(annual[month_columns[: renewal_month + 1]]))
    assert accounts["reason_1_text"].notna().mean() > 0.5
    written = pd.read_parquet(project / "forecast.parquet")
    assert len(written) == len(table)
    assert (project / "forecast.accounts.parquet").exists() and (project / "forecast.backtest.parquet").exists()


def test_report_panel_reads_the_forecast_files(run, project):
    as_of, result = run
    panel = forecast_panel(project / "forecast.parquet")
    months = result.forecast[(result.forecast["by"] == "all") & (result.forecast["period_kind"] == "month")]
    assert [m["expected"] for m in panel["months"]] == pytest.approx(months["expected_retained_mrr"].tolist())
    assert panel["coverage80"] == pytest.approx(result.backtest["inside80_churned_mrr"].mean())
    listed = panel["renewals_at_risk"]
    accounts = result.accounts.set_index("account_id")
    at_risk = [accounts.loc[r["id"], "mrr"] * accounts.loc[r["id"], "churn_before_renewal"] for r in listed]
    assert listed and at_risk == sorted(at_risk, reverse=True)
    assert all(dt.date.fromisoformat(r["renewal"]) < as_of + dt.timedelta(days=90) for r in listed)
    soon = accounts[pd.to_datetime(accounts["next_renewal"]).dt.date < as_of + dt.timedelta(days=90)]
    assert max(at_risk) == pytest.approx((soon["mrr"] * soon["churn_before_renewal"]).max())


def test_forecast_run_logged_to_mlflow(run):
    import mlflow

    from healthscore.registry.store import connect

    client = connect()
    logged = client.get_run(run[1].run_id)
    assert logged.data.tags["healthscore.kind"] == "forecast"
    assert logged.data.metrics["coverage80_churned_mrr"] == pytest.approx(run[1].backtest_summary()["coverage80_churned_mrr"])
    assert {a.path for a in client.list_artifacts(run[1].run_id, "forecast")} >= {"forecast/backtest.csv", "forecast/forecast.parquet"}
    assert mlflow.get_tracking_uri().startswith("sqlite")


@pytest.mark.parametrize(("args", "message"), [
    (["--by", "region"], "--by region"),
    (["--months", "30"], "--months 30"),
    (["--out", "forecast.txt"], "--out forecast.txt"),
    (["--as-of", "2031-01-01"], "after the end of the data"),
])
def test_forecast_cli_rejects_bad_input(base, args, message):
    options = {"--config": str(base), "--as-of": "2025-05-01", "--out": "forecast.parquet"}
    for flag, value in zip(args[::2], args[1::2]):
        options[flag] = value
    result = CliRunner().invoke(app, ["forecast", *itertools.chain.from_iterable(options.items()), *args[len(args) // 2 * 2:]])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output
