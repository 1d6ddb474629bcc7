"""The probability cut-offs frozen into a model, and how a tier policy freezes them."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel

from healthscore.settings import TierPolicy


def freeze_tiers(policy: TierPolicy, reference_probability: np.ndarray) -> Tiers:
    """Cut-offs as churn probabilities: the policy's fixed ones, or its shares of the reference
    population (CS practice: the best quarter healthy, the worst quarter unhealthy)."""
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


class Tiers(BaseModel):
    """Frozen cut-offs: p < healthy_below is healthy, p >= unhealthy_from is unhealthy."""

    healthy_below: float
    unhealthy_from: float
    labels: dict[str, str]
    colors: dict[str, str]

    def assign(self, probability: np.ndarray) -> np.ndarray:
        p = np.asarray(probability)
        return np.where(p < self.healthy_below, "healthy", np.where(p >= self.unhealthy_from, "unhealthy", "at_risk"))
