"""The three health tiers and the probability cut-offs frozen into a model."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

TIERS = ("healthy", "at_risk", "unhealthy")


class TierPolicy(BaseModel):
    """How cut-offs are chosen. `quantile` (CS practice): on the reference population the best
    `healthy_share` are healthy and the worst `unhealthy_share` unhealthy; the cut-offs are then
    frozen as churn probabilities, so a later worsening of the base shows as more red.
    `fixed`: the given probability cut-offs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["quantile", "fixed"] = "quantile"
    healthy_share: float = Field(0.25, gt=0, lt=1)
    unhealthy_share: float = Field(0.25, gt=0, lt=1)
    healthy_below: float | None = Field(None, gt=0, lt=1)  # fixed: churn probability cut-offs
    unhealthy_from: float | None = Field(None, gt=0, lt=1)
    labels: dict[str, str] = {"healthy": "Healthy", "at_risk": "At risk", "unhealthy": "Unhealthy"}
    colors: dict[str, str] = {"healthy": "green", "at_risk": "yellow", "unhealthy": "red"}

    @model_validator(mode="after")
    def _consistent(self) -> TierPolicy:
        if self.policy == "fixed":
            if self.healthy_below is None or self.unhealthy_from is None:
                raise ValueError("the fixed tier policy needs healthy_below and unhealthy_from")
            if self.healthy_below > self.unhealthy_from:
                raise ValueError("healthy_below must not exceed unhealthy_from")
        elif self.healthy_share + self.unhealthy_share >= 1:
            raise ValueError("healthy_share + unhealthy_share must be below 1")
        for name in ("labels", "colors"):
            if set(getattr(self, name)) != set(TIERS):
                raise ValueError(f"tier {name} must name exactly {list(TIERS)}")
        return self

    def thresholds(self, reference_probability: np.ndarray) -> Tiers:
        if self.policy == "fixed":
            return Tiers(healthy_below=self.healthy_below, unhealthy_from=self.unhealthy_from, labels=self.labels, colors=self.colors)
        p = np.asarray(reference_probability)
        return Tiers(
            healthy_below=float(np.quantile(p, self.healthy_share)),
            unhealthy_from=float(np.quantile(p, 1 - self.unhealthy_share)),
            labels=self.labels,
            colors=self.colors,
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
