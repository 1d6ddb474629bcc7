"""The forecast's maths: monthly churn hazards composed over the months ahead, the contract clock
moved forward, and the distribution of churned revenue: weighted Bernoulli outcomes whose
hazards share a random month effect, simulated.

Independence given a month effect: accounts churn independently of each other once the month's
shared effect is drawn (a Gamma frailty with mean 1 multiplying every hazard of that month,
independent from month to month). Its variance is estimated from how far past months' churn
counts swung beyond what independent accounts explain. It still misses accounts tied to each other
(subsidiaries of one group), effects that persist over several months or hit one segment only,
and the uncertainty of the variance itself; the backtest's interval coverage measures what that
costs (docs/FORECAST.md).
"""

from __future__ import annotations

from pathlib import Path

import numba
import numpy as np
import pandas as pd

DAYS_PER_MONTH = 365.25 / 12
INTERVALS = {80: (0.10, 0.90), 95: (0.025, 0.975)}  # level -> (lower, upper) quantile
DRAWS = 20_000  # simulated futures behind every interval
SEED = 14  # fixed: the same inputs give the same intervals
CHUNK_CELLS = 2_000_000  # draws x accounts whose uniform draws are held at once (memory)


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


def month_dispersion(observed: np.ndarray, expected: np.ndarray, variance: np.ndarray) -> float:
    """The variance of a shared month effect (a multiplicative frailty on every account's hazard,
    mean 1) from past months' churn counts: `observed`, `expected` (the sum of the hazards) and
    `variance` (the sum of h (1 - h), what independent accounts alone would give). Method of
    moments pooled over the months, E[(O - E)^2] = V + s2 E^2; 0 when the months swing no more
    than independence explains."""
    observed, expected, variance = (np.asarray(a, dtype=float) for a in (observed, expected, variance))
    excess = float(np.sum((observed - expected) ** 2 - variance))
    scale = float(np.sum(expected**2))
    return max(excess / scale, 0.0) if scale > 0 else 0.0


def month_effects(dispersion: float, draws: int, months: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, months) shared month effects: independent Gamma draws with mean 1 and variance
    `dispersion` (all 1 without one)."""
    if dispersion <= 0:
        return np.ones((draws, months))
    return rng.gamma(1.0 / dispersion, dispersion, size=(draws, months))


def simulate_totals(hazards: np.ndarray, weights: np.ndarray, dispersion: float, draws: int = DRAWS,
                    seed: int = SEED) -> np.ndarray:
    """(draws, months, columns): in each simulated future, the weights (accounts, columns) of the
    accounts that churn in each month ahead. In a draw every account's hazard in month k is
    multiplied by that month's shared effect (capped at 1); given the effects, accounts churn
    independently, each at most once (the first month its survival falls below its uniform draw)."""
    hazards, weights = np.ascontiguousarray(hazards, dtype=float), np.ascontiguousarray(weights, dtype=float)
    n, months = hazards.shape
    rng = np.random.default_rng(seed)
    out = np.zeros((draws, months, weights.shape[1]))
    chunk = max(1, CHUNK_CELLS // max(n, 1))
    for start in range(0, draws, chunk):
        size = min(chunk, draws - start)
        effects = month_effects(dispersion, size, months, rng)
        _churn_totals(hazards, effects, rng.random((size, n)), weights, out[start: start + size])
    return out


@numba.njit(cache=True, nogil=True)
def _churn_totals(hazards, effects, uniforms, weights, out):
    for d in range(effects.shape[0]):
        for i in range(hazards.shape[0]):
            survive = 1.0
            for k in range(hazards.shape[1]):
                survive *= 1.0 - min(effects[d, k] * hazards[i, k], 1.0)
                if survive < uniforms[d, i]:
                    out[d, k] += weights[i]
                    break


def interval_columns(name: str) -> list[str]:
    return [f"{name}_{side}{level}" for level in INTERVALS for side in ("low", "high")]


def sum_summary(expected: float, draws: np.ndarray, name: str) -> dict[str, float]:
    """Expected value and the 80% and 95% intervals (from simulated totals), named after `name`:
    `expected_<name>`, `<name>_low80`, `<name>_high80`, `<name>_low95`, `<name>_high95`."""
    levels = [q for pair in INTERVALS.values() for q in pair]
    bounds = np.quantile(np.asarray(draws, dtype=float), levels, method="inverted_cdf")
    return {f"expected_{name}": float(expected), **dict(zip(interval_columns(name), map(float, bounds)))}


def accounts_path_for(output: Path) -> Path:
    """The per-account forecast, beside the forecast and in its format."""
    return output.with_name(output.stem + ".accounts" + output.suffix)


def backtest_path_for(output: Path) -> Path:
    """The backtest of the run, beside the forecast and in its format."""
    return output.with_name(output.stem + ".backtest" + output.suffix)
