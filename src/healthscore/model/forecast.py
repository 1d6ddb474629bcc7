"""The forecast's maths: monthly churn hazards composed over the months ahead, the contract clock
moved forward, and the distribution of churned revenue as a sum of independent weighted
Bernoulli outcomes, computed exactly (a convolution over a fine grid of the weights).

Independence: given what is known at as_of, accounts churn independently of each other. It misses
whatever moves many accounts at once (a recession, a price change, an outage, a competitor) and
shared model error; the backtest's interval coverage measures what that costs (docs/FORECAST.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DAYS_PER_MONTH = 365.25 / 12
INTERVALS = {80: (0.10, 0.90), 95: (0.025, 0.975)}  # level -> (lower, upper) quantile
GRID = 1 << 14  # points of the grid the weights are rounded to: their sum spans it


def month_probabilities(hazards: np.ndarray) -> np.ndarray:
    """(accounts, months) hazards, each the churn probability in that month given survival to
    its start, -> the unconditional probability of churning in each month."""
    hazards = np.asarray(hazards, dtype=float)
    survive = np.cumprod(1.0 - hazards, axis=1)
    before = np.hstack([np.ones((len(hazards), 1)), survive[:, :-1]])
    return hazards * before


def term_months(term: pd.Series) -> np.ndarray:
    """Contract length in months from the term's name, as the days_to_renewal metric reads it
    (build/metric_sql.py): annual/yearly 12, quarterly 3, otherwise 1."""
    text = term.astype("string").str.lower().fillna("")
    return np.where(text.str.contains("annual|year"), 12, np.where(text.str.contains("quarter"), 3, 1))


def days_to_renewal_ahead(days: np.ndarray, term: np.ndarray, months: int) -> np.ndarray:
    """Days to the next renewal at the start of month `months` after as_of: the countdown rolled
    forward by whole terms (in days of an average month; missing stays missing)."""
    left = np.asarray(days, dtype=float) - months * DAYS_PER_MONTH
    period = np.asarray(term, dtype=float) * DAYS_PER_MONTH
    return np.where(left < 0, np.mod(left, period), left)


def renews_in_month(days_ahead: np.ndarray) -> np.ndarray:
    """Whether a renewal falls inside the month that starts with this countdown."""
    return np.asarray(days_ahead, dtype=float) < DAYS_PER_MONTH


def sum_distribution(p: np.ndarray, w: np.ndarray, grid: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """The distribution of sum_i w_i B_i with independent B_i ~ Bernoulli(p_i) and w_i >= 0:
    (values, probabilities). Exact for integer weights whose sum fits in `grid` (counts of
    accounts); otherwise each weight is rounded to a multiple of sum(w) / grid, which moves any
    outcome by at most half a step per churned account."""
    p, w = np.asarray(p, dtype=float), np.asarray(w, dtype=float)
    keep = (p > 0) & (w > 0)
    p, w = p[keep], w[keep]
    total = float(w.sum())
    if total == 0:
        return np.zeros(1), np.ones(1)
    integral = np.all(w == np.round(w)) and total <= grid
    step = 1.0 if integral else total / grid
    units = np.maximum(np.round(w / step).astype(np.int64), 1)
    pmf = np.zeros(int(units.sum()) + 1)
    pmf[0] = 1.0
    reach = 0  # the highest value reached so far: the DP never touches the zeros beyond it
    for pi, k in zip(p, units):
        reach += k
        moved = pmf[: reach - k + 1] * pi
        pmf[: reach + 1] *= 1.0 - pi
        pmf[k: reach + 1] += moved
    return np.arange(len(pmf)) * step, pmf


def quantiles(values: np.ndarray, pmf: np.ndarray, levels: list[float]) -> np.ndarray:
    """The smallest value whose cumulative probability reaches each level."""
    cdf = np.cumsum(pmf)
    index = np.searchsorted(cdf, np.asarray(levels) - 1e-12, side="left")
    return values[np.minimum(index, len(values) - 1)]


def interval_columns(name: str) -> list[str]:
    return [f"{name}_{side}{level}" for level in INTERVALS for side in ("low", "high")]


def sum_summary(p: np.ndarray, w: np.ndarray, name: str) -> dict[str, float]:
    """Expected value and the 80% and 95% intervals of a weighted Bernoulli sum, named after
    `name`: `expected_<name>`, `<name>_low80`, `<name>_high80`, `<name>_low95`, `<name>_high95`."""
    values, pmf = sum_distribution(p, w)
    bounds = quantiles(values, pmf, [q for pair in INTERVALS.values() for q in pair])
    return {f"expected_{name}": float(np.dot(p, w)), **dict(zip(interval_columns(name), map(float, bounds)))}


def accounts_path_for(output: Path) -> Path:
    """The per-account forecast, beside the forecast and in its format."""
    return output.with_name(output.stem + ".accounts" + output.suffix)


def backtest_path_for(output: Path) -> Path:
    """The backtest of the run, beside the forecast and in its format."""
    return output.with_name(output.stem + ".backtest" + output.suffix)
