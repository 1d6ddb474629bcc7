"""Customer bases shaped unlike the demo, with their own column and event names, for `init`,
labels and metric QA tests. Each knows its truth: every account's churn date and the date up to
which its subscriptions export can show churn.

- b2c: a consumer app, one row per event with a timestamp (`uid`, `ts`, `action`), one
  subscription row per account, extra account columns (age, country);
- api: a usage-based API product, daily rollups (`customer_id`, `day`, `metric`, `count`);
- billing: monthly billing rows per account (`period_start`, `period_end`) whose export stops a
  month before the events do.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

START = dt.date(2024, 1, 1)


@dataclass
class Shape:
    name: str
    tables: dict[str, pd.DataFrame]
    churn: pd.Series  # account id -> churn date (NaT: still a customer)
    first_start: pd.Series  # account id -> first subscription start
    knowable_end: dt.date  # the first day the subscriptions export cannot show churn on
    events_end: dt.date  # the day after the last event

    def write(self, folder: Path) -> dict[str, Path]:
        folder.mkdir(parents=True, exist_ok=True)
        paths = {}
        for name, frame in self.tables.items():
            paths[name] = folder / f"{name}.{'csv' if self.name == 'b2c' else 'parquet'}"
            frame.to_csv(paths[name], index=False) if self.name == "b2c" else frame.to_parquet(paths[name], index=False)
        return paths


def _accounts(rng, n: int, days: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Signup day, engagement, churn day (or -1) per account: the less engaged churn sooner."""
    signup = np.where(rng.random(n) < 0.5, 0, rng.integers(0, days - 60, n))
    engagement = rng.lognormal(0.0, 0.8, n)
    daily_hazard = 0.004 / np.sqrt(engagement)
    life = rng.exponential(1 / daily_hazard).astype(int) + 20
    churn = np.where(signup + life < days, signup + life, -1)
    return signup, engagement, churn, life


def _activity(rng, signup, engagement, churn, days: int, types: list[str], rates: list[float]) -> pd.DataFrame:
    """(account index, day, type, count) rollups; usage fades in the 30 days before a churn."""
    rows = []
    for i in range(len(signup)):
        end = churn[i] if churn[i] >= 0 else days
        span = np.arange(signup[i], end)
        if not len(span):
            continue
        fade = np.clip((end - span) / 30, 0.2, 1.0) if churn[i] >= 0 else np.ones(len(span))
        for t, rate in zip(types, rates):
            counts = rng.poisson(rate * engagement[i] * fade)
            keep = counts > 0
            rows.append(pd.DataFrame({"i": i, "day": span[keep], "type": t, "count": counts[keep]}))
    return pd.concat(rows, ignore_index=True)


def _day(d) -> dt.date:
    return START + dt.timedelta(days=int(d))


def b2c(seed: int = 1, n: int = 500, days: int = 200) -> Shape:
    rng = np.random.default_rng(seed)
    signup, engagement, churn, _ = _accounts(rng, n, days)
    ids = np.array([f"u{i:05d}" for i in range(n)])
    age = rng.integers(16, 70, n)
    accounts = pd.DataFrame({"uid": ids, "signup_date": [_day(d) for d in signup], "country": rng.choice(["FR", "DE", "US", "BR"], n),
                             "age": age})
    subs = pd.DataFrame({"uid": ids, "plan_start": [_day(d) for d in signup],
                         "cancelled_on": [_day(c) if c >= 0 else None for c in churn]})
    roll = _activity(rng, signup, engagement, churn, days, ["post", "comment", "like", "message", "app_open"], [0.3, 0.4, 1.2, 0.5, 0.9])
    one_per_event = roll.loc[roll.index.repeat(roll["count"])]
    seconds = rng.integers(0, 86400, len(one_per_event))
    ts = pd.to_datetime([_day(d) for d in one_per_event["day"]]) + pd.to_timedelta(seconds, unit="s")
    events = pd.DataFrame({"uid": ids[one_per_event["i"].to_numpy()], "ts": ts, "action": one_per_event["type"].to_numpy()})
    return _shape("b2c", {"accounts": accounts, "subscriptions": subs, "events": events}, ids, signup, churn, _day(days), _day(days))


def api(seed: int = 2, n: int = 400, days: int = 420) -> Shape:
    rng = np.random.default_rng(seed)
    signup, engagement, churn, _ = _accounts(rng, n, days)
    ids = np.array([f"C-{i:04d}" for i in range(n)])
    accounts = pd.DataFrame({"customer_id": ids, "created": [_day(d) for d in signup], "tier": rng.choice(["free", "pro", "scale"], n)})
    subs = pd.DataFrame({"customer_id": ids, "start_date": [_day(d) for d in signup],
                         "end_date": [_day(c) if c >= 0 else None for c in churn], "mrr": np.round(50 * engagement + 20, 2)})
    roll = _activity(rng, signup, engagement, churn, days, ["api_calls", "errors", "webhooks"], [6.0, 0.3, 1.0])
    roll["count"] = np.where(roll["type"] == "api_calls", roll["count"] * 100, roll["count"])
    events = pd.DataFrame({"customer_id": ids[roll["i"].to_numpy()], "day": [_day(d) for d in roll["day"]],
                           "metric": roll["type"].to_numpy(), "count": roll["count"].astype(float).to_numpy()})
    return _shape("api", {"accounts": accounts, "subscriptions": subs, "events": events}, ids, signup, churn, _day(days), _day(days))


def billing(seed: int = 3, n: int = 400, days: int = 480, cut_days: int = 31) -> Shape:
    """Monthly billing rows; the export stops `cut_days` before the events: every open account's
    last exported row ends at a period end inside the last month, as if it had churned there."""
    rng = np.random.default_rng(seed)
    signup, engagement, churn, _ = _accounts(rng, n, days)
    ids = np.array([f"ACC{i:04d}" for i in range(n)])
    cutoff = days - cut_days
    rows = []
    for i in range(n):
        start = _day(signup[i])
        end = _day(churn[i]) if churn[i] >= 0 else None
        k = 0
        while True:
            period_start = _add_months(start, k)
            if (end and period_start >= end) or period_start >= _day(cutoff):
                break
            period_end = _add_months(start, k + 1)
            rows.append((ids[i], period_start, min(period_end, end) if end else period_end))
            k += 1
    subs = pd.DataFrame(rows, columns=["account_id", "period_start", "period_end"])
    accounts = pd.DataFrame({"account_id": ids, "created_at": [_day(d) for d in signup],
                             "segment": rng.choice(["SMB", "mid-market"], n)})
    roll = _activity(rng, signup, engagement, churn, days, ["login", "report_viewed", "export"], [1.5, 0.8, 0.2])
    events = pd.DataFrame({"account_id": ids[roll["i"].to_numpy()], "event_date": [_day(d) for d in roll["day"]],
                           "event_type": roll["type"].to_numpy(), "quantity": roll["count"].astype(float).to_numpy()})
    knowable = subs["period_start"].max() + dt.timedelta(days=1)
    return _shape("billing", {"accounts": accounts, "subscriptions": subs, "events": events}, ids, signup, churn, knowable, _day(days))


def _add_months(day: dt.date, months: int) -> dt.date:
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    last = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(year, month, min(day.day, last))


def _shape(name, tables, ids, signup, churn, knowable, events_end) -> Shape:
    churn_dates = pd.Series([pd.Timestamp(_day(c)) if c >= 0 else pd.NaT for c in churn], index=ids)
    first = pd.Series([_day(s) for s in signup], index=ids)
    return Shape(name, tables, churn_dates, first, knowable, events_end)


def expected_labels(shape: Shape, dataset_frame: pd.DataFrame, horizon_end) -> pd.Series:
    """The label each (account, as_of) row should have, from the generator's truth: churned in
    [as_of, horizon end); missing where the window passes what the export can show."""
    out = []
    for acc, as_of in zip(dataset_frame["account_id"], dataset_frame["as_of"]):
        end = horizon_end(as_of)
        if end > shape.knowable_end:
            out.append(pd.NA)
            continue
        c = shape.churn[acc]
        out.append(bool(pd.notna(c) and pd.Timestamp(as_of) <= c < pd.Timestamp(end)))
    return pd.Series(out, index=dataset_frame.index, dtype="boolean")
