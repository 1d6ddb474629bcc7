"""The tier cut-offs frozen into a model, and the health-score scale they anchor.

The health score is linear in the model's log-odds, like a credit scorecard's: a fixed number of
points doubles the odds of churn, and the model's tier cut-offs land on the same round scores
for every model (default: unhealthy below 40, healthy from 70). So one metric's log-odds
contribution is worth the same points in every month and for every account, and an account's
points add up exactly to its score; only scores beyond 0 and 100 are clipped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from pydantic import BaseModel

from healthscore.settings import TierPolicy

SCORE_MIN, SCORE_MAX = 0.0, 100.0


class ScoreScale(BaseModel):
    """health score = offset - factor x log-odds, clipped to 0-100."""

    offset: float
    factor: float  # points per unit of log-odds
    unhealthy_below: float  # the score of the unhealthy cut-off
    healthy_from: float  # the score of the healthy cut-off

    @classmethod
    def anchored(cls, healthy_log_odds: float, unhealthy_log_odds: float, policy: TierPolicy) -> ScoreScale:
        """The scale on which these two log-odds land on the policy's two cut-off scores."""
        spread = max(unhealthy_log_odds - healthy_log_odds, 1e-9)  # a model that ranks nobody apart
        factor = (policy.score_healthy_from - policy.score_unhealthy_below) / spread
        return cls(offset=policy.score_healthy_from + factor * healthy_log_odds, factor=factor,
                   unhealthy_below=policy.score_unhealthy_below, healthy_from=policy.score_healthy_from)

    @property
    def points_to_double_odds(self) -> float:
        return self.factor * float(np.log(2))

    def unclipped(self, log_odds: np.ndarray) -> np.ndarray:
        return self.offset - self.factor * np.asarray(log_odds, dtype=float)

    def score(self, log_odds: np.ndarray) -> np.ndarray:
        return np.clip(self.unclipped(log_odds), SCORE_MIN, SCORE_MAX)

    def points(self, contributions: np.ndarray) -> np.ndarray:
        """Log-odds contributions as score points (more risk, fewer points)."""
        return -self.factor * np.asarray(contributions, dtype=float)

    def log_odds(self, score: np.ndarray) -> np.ndarray:
        return (self.offset - np.asarray(score, dtype=float)) / self.factor


class Tiers(BaseModel):
    """Frozen cut-offs. A contender's are churn probabilities: p < healthy_below is healthy,
    p >= unhealthy_from is unhealthy. The model's also carry its score `scale`, and its tiers
    are read off the score (the same cut-offs: the probabilities are those of the two anchors)."""

    healthy_below: float
    unhealthy_from: float
    labels: dict[str, str]
    colors: dict[str, str]
    scale: ScoreScale | None = None  # None: a contender's tiers

    def assign(self, probability: np.ndarray) -> np.ndarray:
        p = np.asarray(probability)
        return np.where(p < self.healthy_below, "healthy", np.where(p >= self.unhealthy_from, "unhealthy", "at_risk"))

    def assign_scores(self, score: np.ndarray, previous: np.ndarray | None = None, margin: float = 0.0) -> np.ndarray:
        """Tiers of health scores. With each account's `previous` tier (None where it has none) and
        a `margin`, an account leaves its tier only once its score is `margin` points past the
        cut-off, so a score wobbling around a cut-off does not flip the tier run after run."""
        s, scale = np.asarray(score, dtype=float), self.scale
        plain = np.where(s >= scale.healthy_from, "healthy", np.where(s < scale.unhealthy_below, "unhealthy", "at_risk"))
        if previous is None or margin <= 0:
            return plain
        previous = np.asarray(previous, dtype=object)
        # the cut-offs as seen from each previous tier: harder to leave, as easy to stay
        healthy_from = np.where(previous == "healthy", scale.healthy_from - margin, scale.healthy_from + margin)
        unhealthy_below = np.where(previous == "unhealthy", scale.unhealthy_below + margin, scale.unhealthy_below - margin)
        held = np.where(s >= healthy_from, "healthy", np.where(s < unhealthy_below, "unhealthy", "at_risk"))
        return np.where(pd.isna(previous), plain, held)


def freeze_tiers(policy: TierPolicy, reference_probability: np.ndarray) -> Tiers:
    """A contender's cut-offs as churn probabilities: the policy's fixed ones, or its shares of the
    reference population (CS practice: the best quarter healthy, the worst quarter unhealthy)."""
    if policy.policy == "fixed":
        return Tiers(healthy_below=policy.healthy_below, unhealthy_from=policy.unhealthy_from, labels=policy.labels,
                     colors=policy.colors)
    p = np.asarray(reference_probability)
    return Tiers(
        healthy_below=float(np.quantile(p, policy.healthy_share)),
        unhealthy_from=float(np.quantile(p, 1 - policy.unhealthy_share)),
        labels=policy.labels,
        colors=policy.colors,
    )


def freeze_model_tiers(policy: TierPolicy, reference_log_odds: np.ndarray, calibrate: Callable[[np.ndarray], np.ndarray]) -> Tiers:
    """The model's cut-offs, frozen in log-odds (its shares of the reference population, or the
    policy's fixed probabilities mapped back through the calibration), and the scale they anchor."""
    z = np.asarray(reference_log_odds, dtype=float)
    if policy.policy == "fixed":
        healthy, unhealthy = log_odds_at([policy.healthy_below, policy.unhealthy_from], calibrate, z)
    else:
        healthy, unhealthy = float(np.quantile(z, policy.healthy_share)), float(np.quantile(z, 1 - policy.unhealthy_share))
    p = calibrate(np.array([healthy, unhealthy]))
    return Tiers(healthy_below=float(p[0]), unhealthy_from=float(p[1]), labels=policy.labels, colors=policy.colors,
                 scale=ScoreScale.anchored(healthy, unhealthy, policy))


def log_odds_at(probabilities: list[float], calibrate: Callable[[np.ndarray], np.ndarray], around: np.ndarray) -> np.ndarray:
    """The log-odds the calibration maps to each probability (the smallest, where it is flat),
    searched on a fine grid spanning the reference population and well beyond it."""
    grid = np.linspace(float(np.min(around)) - 10.0, float(np.max(around)) + 10.0, 200_001)
    p = np.maximum.accumulate(calibrate(grid))
    return grid[np.minimum(np.searchsorted(p, probabilities, side="left"), len(grid) - 1)]
