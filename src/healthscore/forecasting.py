"""The renewal and revenue forecast, and its backtest (docs/FORECAST.md).

A monthly discrete-time hazard model (the health score's metrics and `HealthModel`, with a
1-month churn label, calibrated) gives each account's churn probability in the month after
as_of; moving the contract clock (days to renewal, tenure) forward month by month and composing
the hazards gives its churn probability in each month ahead. Summed over the base with MRR as
weights they forecast churned and retained revenue, with intervals from simulated futures in which
accounts churn independently given a shared month effect on the hazards, its variance estimated
from the past months' swings. Every run backtests the same method on past
as_of dates (a model trained only on what was known then) and logs both to MLflow.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from healthscore.build.raw import build_dataset
from healthscore.config import ChurnConfig, Config, add_months
from healthscore.dataset import Dataset, FeatureSpec
from healthscore.errors import ConfigError, DataError, SplitError, UserError
from healthscore.io import check_outputs, write_table
from healthscore.model import forecast as fc
from healthscore.model.estimator import HealthModel
from healthscore.model.reasons import explain
from healthscore.registry.forecast import log_forecast

GROUPINGS = ("segment", "csm_owner", "plan")
BACKTEST_MONTHS = 3  # each backtest date forecasts the following 3 months
MIN_TRAIN_DATES = 3  # labelled months a hazard model trains on at least, besides its calibration months
# The latest labelled months: early stopping and calibration of the hazard model. They set the
# forecast's level, an error every account shares for the whole forecast: a month's churn is off
# its expectation by about 25% in the demo, which leaves a 3-month level about 14% off, a 6-month
# one 10% (docs/FORECAST.md).
CALIBRATION_MONTHS = 6
REASONS_SHOWN = 3
HAZARD_LEARNING_RATE = 0.1  # at least: a model per backtest date on months x leads rows must stay quick
LEAD = FeatureSpec(code="months_ahead", label="Months ahead", description="months from the metrics' as_of to the churn month",
                   family="forecast")


@dataclass
class ForecastRun:
    forecast: pd.DataFrame  # per group and period (month, quarter): expected values and intervals
    accounts: pd.DataFrame  # per account: churn probability per month ahead and before renewal
    backtest: pd.DataFrame  # per past as_of: the 3-month forecast against what happened
    run_id: str | None = None
    notes: list[str] = field(default_factory=list)

    def backtest_summary(self) -> dict[str, float]:
        bt = self.backtest
        return {
            "backtest_dates": float(len(bt)),
            "coverage80_churned_mrr": float(bt["inside80_churned_mrr"].mean()),
            "coverage95_churned_mrr": float(bt["inside95_churned_mrr"].mean()),
            "coverage80_churned_accounts": float(bt["inside80_churned_accounts"].mean()),
            "coverage95_churned_accounts": float(bt["inside95_churned_accounts"].mean()),
            "mean_abs_pct_error_churned_mrr": float((bt["error_churned_mrr"].abs() / bt["actual_churned_mrr"]).mean()),
            "mean_abs_error_churned_accounts": float(bt["error_churned_accounts"].abs().mean()),
        }


def forecast_revenue(
    config: Config, as_of: dt.date, months: int = 12, by: str | None = None, output: Path | None = None,
    progress: Callable[[str], None] | None = None, log: bool = True,
) -> ForecastRun:
    """Forecast churned and retained MRR for `months` months after `as_of` (also by `by`), with
    the backtest of the same method on every earlier as_of whose 3 months are known by `as_of`.
    Writes `output` and the per-account and backtest files beside it; logs the run to MLflow."""
    say = progress or (lambda _msg: None)
    if config.schedule.every != "month":
        raise ConfigError(f"schedule.every: the forecast needs a monthly schedule, not {config.schedule.every!r}")
    if not 1 <= months <= 24:
        raise UserError(f"--months {months}: forecast between 1 and 24 months")
    if by is not None and by not in GROUPINGS:
        raise UserError(f"--by {by}: break the forecast down by one of {', '.join(GROUPINGS)}")
    if output is not None:
        inputs = [config.source_path(name) for name in config.sources]
        check_outputs(output, {"per account": fc.accounts_path_for(output), "backtest": fc.backtest_path_for(output)}, inputs)

    say("building the monthly dataset (1-month churn label)")
    hazard = HazardData.build(config, as_of, by)
    say("training the hazard model on what was known at as_of")
    model = hazard.fit(as_of, months)
    now = hazard.rows(as_of)
    if now.empty:
        raise DataError(f"as_of {as_of}: no active account to forecast")
    hazards = hazard.hazards(model, now, months)
    accounts = account_table(hazard, model, now, fc.month_probabilities(hazards), as_of)
    table = forecast_table(now, hazards, hazard.dispersion(model, as_of), hazard, as_of, by)

    dates = hazard.backtest_dates(as_of)
    if not dates:
        raise SplitError(f"no backtest date: the forecast backtests as_of dates whose {BACKTEST_MONTHS} following months are "
                         f"known by {as_of} and that have {MIN_TRAIN_DATES + CALIBRATION_MONTHS} labelled months "
                         "before them; the data holds too little history before as_of")
    rows = []
    for i, date in enumerate(dates):
        say(f"backtest {i + 1}/{len(dates)}: {date}")
        rows.append(hazard.backtest(date))
    run = ForecastRun(table, accounts, pd.DataFrame(rows), notes=hazard.dataset.spec.notes)
    if output is not None:
        write_table(run.forecast, output)
        write_table(run.accounts, fc.accounts_path_for(output))
        write_table(run.backtest, fc.backtest_path_for(output))
    if log:
        params = {"as_of": str(as_of), "months": months, "by": by or "", "label": "churn within 1 month",
                  "backtest_months": BACKTEST_MONTHS, "dispersion": float(table["dispersion"].iloc[0]),
                  "method": "discrete-time hazard, weighted Bernoulli sum with a shared month effect, simulated"}
        files = [output, fc.accounts_path_for(output), fc.backtest_path_for(output)] if output is not None else []
        run.run_id = log_forecast(params, run.backtest_summary(), run.backtest, files)
    return run


@dataclass
class HazardData:
    """The 1-month-label dataset of every schedule date up to as_of, and the contract clock's
    columns the forecast moves forward."""

    dataset: Dataset
    config: Config
    countdown: str  # days to renewal
    countup: list[str]  # tenure-like clocks that grow with time
    _stacked: dict[int, pd.DataFrame] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, config: Config, as_of: dt.date, by: str | None) -> HazardData:
        monthly = config.model_copy(update={"churn": ChurnConfig(horizon_months=1, check_label_rates=config.churn.check_label_rates)})
        dates = sorted({d for d in config.schedule.dates() if d < as_of} | {as_of})
        dataset = build_dataset(monthly, as_of_dates=dates)
        catalogue = {m.code: m for m in config.catalogue()}
        codes = set(dataset.spec.feature_codes) | set(dataset.frame.columns)
        needed = {"mrr": "the subscriptions' mrr column", "days_to_renewal": "the subscriptions' renewal_date column"}
        missing = [f"{code} ({why})" for code, why in needed.items() if code not in codes]
        if missing:
            raise DataError(f"the forecast needs the metric(s) {', '.join(missing)}: map the column in sources.subscriptions")
        if by is not None and by not in dataset.frame:
            raise DataError(f"--by {by}: the data has no {by} (map it in sources.accounts or sources.subscriptions)")
        countup = [c for c, m in catalogue.items() if m.aggregation == "days_since_first" and c in dataset.spec.feature_codes]
        return cls(dataset, monthly, "days_to_renewal", countup)

    @property
    def horizon(self):
        return self.config.horizon

    def rows(self, as_of: dt.date) -> pd.DataFrame:
        frame = self.dataset.frame
        return frame[frame["as_of"] == as_of].reset_index(drop=True)

    def fit(self, cutoff: dt.date, leads: int) -> HealthModel:
        """The hazard model of what was known at `cutoff`: rows whose churn month ended by then,
        the latest months (by the month the label is about) for early stopping and calibration,
        the earlier ones for training."""
        settings = self.config.model
        stacked = self.stacked(leads)
        known = self.known_months(cutoff)
        valid = known[-CALIBRATION_MONTHS:]
        train = [d for d in known if valid and d < valid[0]]
        if len(train) < MIN_TRAIN_DATES:
            raise SplitError(f"as_of {cutoff}: {len(known)} labelled months before it; the hazard model needs "
                             f"{MIN_TRAIN_DATES + CALIBRATION_MONTHS} (the latest {CALIBRATION_MONTHS} for calibration)")
        tr, va = stacked[stacked["label_month"].isin(train)], stacked[stacked["label_month"].isin(valid)]
        base = settings.params
        rate = max(base.learning_rate, HAZARD_LEARNING_RATE)
        # the same patience in learning distance: rounds without improvement scale with 1 / rate
        patience = max(1, round(base.early_stopping_rounds * base.learning_rate / rate))
        params = base.model_copy(update={"learning_rate": rate, "early_stopping_rounds": patience})
        features = self.dataset.spec.features + [LEAD]
        return HealthModel(features, params, settings.tiers).fit(tr, tr["churned"].astype(int), va, va["churned"].astype(int))

    def known_months(self, cutoff: dt.date) -> list[dt.date]:
        """The label months whose outcome was known at `cutoff` (the month ended by then), in order."""
        return sorted(d for d in self.dataset.labelled["as_of"].unique() if self.horizon.end(d) <= cutoff)

    def stacked(self, leads: int) -> pd.DataFrame:
        """Landmark rows: each account's metrics at a month start, the contract clock moved `k`
        months on, `months_ahead` = k, and whether it churned in that later month, for every k
        below `leads` and every account still active then (the hazard is conditional on survival)."""
        if leads not in self._stacked:
            frame, labelled = self.dataset.frame, self.dataset.labelled[["account_id", "as_of", "churned"]]
            parts = []
            for k in range(leads):
                ahead = self.months_ahead(frame, k)
                ahead["label_month"] = ahead["as_of"].map({d: add_months(d, k) for d in frame["as_of"].unique()})
                ahead = ahead.drop(columns="churned").merge(
                    labelled.rename(columns={"as_of": "label_month"}), on=["account_id", "label_month"])
                parts.append(ahead)
            self._stacked[leads] = pd.concat(parts, ignore_index=True)
        return self._stacked[leads]

    def months_ahead(self, rows: pd.DataFrame, k: int) -> pd.DataFrame:
        """The rows as the contract clock will read `k` months after as_of; every other metric
        stays as it is at as_of, and the model learns from `months_ahead` how far that reaches."""
        ahead = rows.copy()
        ahead[self.countdown] = fc.days_to_renewal_ahead(rows[self.countdown], self.terms(rows), k)
        for column in self.countup:
            ahead[column] = rows[column] + k * fc.DAYS_PER_MONTH
        ahead[LEAD.code] = float(k)
        return ahead

    def terms(self, rows: pd.DataFrame) -> np.ndarray:
        return fc.term_months(rows["term"] if "term" in rows else pd.Series("", index=rows.index))

    def hazards(self, model: HealthModel, rows: pd.DataFrame, months: int) -> np.ndarray:
        """(accounts, months): each account's churn hazard in each month ahead."""
        return np.column_stack([model.predict_proba(self.months_ahead(rows, k))[:, 1] for k in range(months)])

    def dispersion(self, model: HealthModel, cutoff: dt.date) -> float:
        """The variance of the shared month effect, from every label month known at `cutoff`: the
        churns counted against the model's hazards at the month's start (months ahead 0). Most of
        those months trained the model, so their swings are if anything too small: a lower bound."""
        rows = self.stacked(1)
        rows = rows[rows["label_month"].isin(self.known_months(cutoff))]
        h = model.predict_proba(rows)[:, 1]
        months = pd.DataFrame({"month": rows["label_month"].to_numpy(), "o": rows["churned"].astype(float).to_numpy(),
                               "e": h, "v": h * (1 - h)}).groupby("month").sum()
        return fc.month_dispersion(months["o"], months["e"], months["v"])

    def renewals(self, rows: pd.DataFrame, months: int) -> np.ndarray:
        """(accounts, months): whether a renewal falls in each month ahead."""
        return np.column_stack([fc.renews_in_month(self.months_ahead(rows, k)[self.countdown]) for k in range(months)])

    def backtest_dates(self, as_of: dt.date) -> list[dt.date]:
        """Schedule dates whose next 3 months are labelled and known by `as_of`, with enough
        labelled history before them to train on."""
        dates = sorted(self.dataset.labelled["as_of"].unique())
        first = CALIBRATION_MONTHS + MIN_TRAIN_DATES
        return [d for i, d in enumerate(dates) if i >= first and add_months(d, BACKTEST_MONTHS) <= as_of
                and add_months(d, BACKTEST_MONTHS - 1) in set(dates)]

    def backtest(self, date: dt.date) -> dict:
        """The 3-month forecast made at `date` by a model trained on what was known then, and what
        happened: an account churned in the 3 months if its 1-month label is true at any of the
        three month starts (the windows tile, and a churned account has no later row)."""
        rows = self.rows(date)
        model = self.fit(date, BACKTEST_MONTHS)
        hazards, dispersion = self.hazards(model, rows, BACKTEST_MONTHS), self.dispersion(model, date)
        p = fc.month_probabilities(hazards).sum(axis=1)
        later = self.dataset.labelled
        later = later[(later["as_of"] >= date) & (later["as_of"] < add_months(date, BACKTEST_MONTHS))]
        churned = rows["account_id"].isin(later.loc[later["churned"].astype(bool), "account_id"]).to_numpy()
        mrr = mrr_of(rows)
        weights = np.column_stack([mrr, np.ones(len(rows))])
        totals = fc.simulate_totals(hazards, weights, dispersion).sum(axis=1)
        out = {"as_of": date, "accounts": len(rows), "mrr_start": float(mrr.sum()), "dispersion": dispersion}
        for j, name in enumerate(("churned_mrr", "churned_accounts")):
            summary = fc.sum_summary(float(p @ weights[:, j]), totals[:, j], name)
            actual = float(weights[churned, j].sum())
            out |= summary | {f"actual_{name}": actual, f"error_{name}": summary[f"expected_{name}"] - actual}
            for level in fc.INTERVALS:
                out[f"inside{level}_{name}"] = bool(summary[f"{name}_low{level}"] <= actual <= summary[f"{name}_high{level}"])
        return out


def mrr_of(rows: pd.DataFrame) -> np.ndarray:
    """Each account's MRR at as_of, the revenue at stake (missing: none)."""
    return pd.to_numeric(rows["mrr"], errors="coerce").fillna(0.0).to_numpy(dtype=float)


def periods(as_of: dt.date, months: int) -> list[tuple[str, str, dt.date, dt.date, slice]]:
    """(kind, label, start, end, months ahead) of every month and every 3-month block (the last
    block may be shorter), in order."""
    out = []
    for k in range(months):
        start = add_months(as_of, k)
        out.append(("month", start.strftime("%Y-%m"), start, add_months(as_of, k + 1), slice(k, k + 1)))
    for q, k in enumerate(range(0, months, 3)):
        end = min(k + 3, months)
        out.append(("quarter", f"Q{q + 1}", add_months(as_of, k), add_months(as_of, end), slice(k, end)))
    return out


def forecast_table(rows: pd.DataFrame, hazards: np.ndarray, dispersion: float, hazard: HazardData, as_of: dt.date,
                   by: str | None) -> pd.DataFrame:
    """Per group (the whole base, then each value of `by`) and period: accounts and MRR up for
    renewal, expected churned accounts and MRR, retained MRR and GRR at the period's end, with
    80% and 95% intervals (every group and period from the same simulated futures)."""
    p = fc.month_probabilities(hazards)
    mrr, renews = mrr_of(rows), hazard.renewals(rows, p.shape[1])
    groups = [("all", "all", np.ones(len(rows), dtype=bool))]
    if by is not None:
        values = rows[by].astype("string").fillna("(none)")
        groups += [(by, str(v), (values == v).to_numpy()) for v in sorted(values.unique())]
    members = np.column_stack([member for _, _, member in groups]).astype(float)
    totals = fc.simulate_totals(hazards, np.hstack([members * mrr[:, None], members]), dispersion)
    out = []
    for g, (grouping, name, member) in enumerate(groups):
        churned_mrr, churned_accounts = totals[:, :, g], totals[:, :, len(groups) + g]  # (draws, months)
        g_mrr, g_p, g_renews = mrr[member], p[member], renews[member]
        start_mrr = float(g_mrr.sum())
        for kind, label, start, end, span in periods(as_of, p.shape[1]):
            in_period, to_end = g_p[:, span].sum(axis=1), g_p[:, : span.stop].sum(axis=1)
            renewing = g_renews[:, span].any(axis=1)
            row = {"as_of": as_of, "by": grouping, "group": name, "period_kind": kind, "period": label,
                   "period_start": start, "period_end": end, "accounts_active": int(member.sum()), "mrr_start": start_mrr,
                   "accounts_renewing": int(renewing.sum()), "mrr_renewing": float(g_mrr[renewing].sum()),
                   "dispersion": dispersion}
            row |= fc.sum_summary(float(in_period.sum()), churned_accounts[:, span].sum(axis=1), "churned_accounts")
            row |= fc.sum_summary(float(in_period @ g_mrr), churned_mrr[:, span].sum(axis=1), "churned_mrr")
            lost = fc.sum_summary(float(to_end @ g_mrr), churned_mrr[:, : span.stop].sum(axis=1), "lost")  # since as_of
            row["expected_retained_mrr"] = start_mrr - lost["expected_lost"]
            row["grr"] = row["expected_retained_mrr"] / start_mrr if start_mrr else np.nan
            for level in fc.INTERVALS:  # retained is what is left: its low end is the high end of the loss
                low, high = start_mrr - lost[f"lost_high{level}"], start_mrr - lost[f"lost_low{level}"]
                row[f"retained_mrr_low{level}"], row[f"retained_mrr_high{level}"] = low, high
                row[f"grr_low{level}"], row[f"grr_high{level}"] = (low / start_mrr, high / start_mrr) if start_mrr else (np.nan,) * 2
            out.append(row)
    return pd.DataFrame(out)


def account_table(hazard: HazardData, model: HealthModel, rows: pd.DataFrame, p: np.ndarray, as_of: dt.date) -> pd.DataFrame:
    """Per account: its churn probability in each month ahead, before its next renewal (annual
    terms; monthly ones renew every month) and over the whole forecast, the MRR at stake and the
    hazard model's top reasons (exact contributions, as the health score's)."""
    months = p.shape[1]
    renews = hazard.renewals(rows, months)
    first = np.where(renews.any(axis=1), renews.argmax(axis=1), -1)
    cumulative = np.cumsum(p, axis=1)
    out = pd.DataFrame({"account_id": rows["account_id"].astype(str), "as_of": as_of})
    for column in ("account_name", "csm_owner", "segment", "plan", "term"):
        if column in rows:
            out[column] = rows[column].astype("string")
    out["mrr"] = mrr_of(rows)
    days = pd.to_numeric(rows[hazard.countdown], errors="coerce")
    out["next_renewal"] = [as_of + dt.timedelta(days=int(d)) if pd.notna(d) else None for d in days]
    out["churn_before_renewal"] = np.where(first >= 0, cumulative[np.arange(len(p)), np.maximum(first, 0)], np.nan)
    out["churn_probability"] = cumulative[:, -1]
    out["expected_churned_mrr"] = out["mrr"] * out["churn_probability"]
    for k in range(months):
        out[f"churn_month_{k + 1}"] = p[:, k]
    reasons = explain(model, hazard.months_ahead(rows, 0))
    for k in range(1, REASONS_SHOWN + 1):
        out[f"reason_{k}_text"] = reasons[f"reason_{k}_text"].to_numpy()
    return out
