"""Training settings: the `model:` section of the YAML config, and all that a run logs as params."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from healthscore.defaults import MODEL_NAME
from healthscore.scores_file import TIERS


class TierPolicy(BaseModel):
    """How cut-offs are chosen. `quantile` (CS practice): on the reference population the best
    `healthy_share` are healthy and the worst `unhealthy_share` unhealthy; the cut-offs are then
    frozen, so a later worsening of the base shows as more red. `fixed`: the given churn
    probability cut-offs. Either way they land on the health scores `score_unhealthy_below` and
    `score_healthy_from`, the same for every model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Literal["quantile", "fixed"] = "quantile"
    healthy_share: float = Field(0.25, gt=0, lt=1)
    unhealthy_share: float = Field(0.25, gt=0, lt=1)
    healthy_below: float | None = Field(None, gt=0, lt=1)  # fixed: churn probability cut-offs
    unhealthy_from: float | None = Field(None, gt=0, lt=1)
    score_unhealthy_below: float = Field(40.0, gt=0, lt=100)  # health score of the unhealthy cut-off
    score_healthy_from: float = Field(70.0, gt=0, lt=100)  # health score of the healthy cut-off
    # an account leaves its last tier only once its score is this many points past the cut-off
    # (0: tiers follow the score exactly); measured in docs/BENCHMARKS.md
    stability_margin: float = Field(3.0, ge=0, lt=30)
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
        if self.score_unhealthy_below >= self.score_healthy_from:
            raise ValueError("score_unhealthy_below must be below score_healthy_from")
        for name in ("labels", "colors"):
            if set(getattr(self, name)) != set(TIERS):
                raise ValueError(f"tier {name} must name exactly {list(TIERS)}")
        return self


class ModelParams(BaseModel):
    """LightGBM settings that suit a few thousand to a few million account-dates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    learning_rate: float = Field(0.03, gt=0, le=1)
    num_leaves: int = Field(15, ge=2)
    min_data_in_leaf: int = Field(40, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(5.0, ge=0)
    max_rounds: int = Field(3000, ge=1)
    early_stopping_rounds: int = Field(100, ge=1)
    monotone: bool = True  # constraints from each metric's good_direction
    calibration: Literal["auto", "isotonic", "sigmoid"] = "auto"
    seed: int = 7

    def lightgbm(self, monotone: list[int]) -> dict:
        return {
            "objective": "binary",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "monotone_constraints": monotone,
            "monotone_constraints_method": "intermediate",
            "seed": self.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbosity": -1,
        }


class SplitConfig(BaseModel):
    """The time split: the latest labelled as_of dates test the model, the ones before them
    validate it (early stopping, calibration), the rest train it. A dataset without dates is
    split 60/20/20 by account instead."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_dates: int = Field(3, ge=1)  # the latest labelled as_of dates: the test slice
    valid_dates: int = Field(3, ge=1)  # the dates before them: the validation slice
    # each slice only uses dates whose churn horizon has closed before the next slice starts
    purge: bool = True
    seed: int = 7  # the split by account of a dataset without dates

    def advice(self, dates: list[dt.date], horizon_days: int) -> str:
        """What would let `dates` (the labelled as_of dates) split: fewer test or validation dates,
        a shorter horizon, no purge, with the numbers for these dates."""
        gap = horizon_days if self.purge else 0
        options = []
        if fewer := self._largest(dates, gap):
            options.append(f"model.split.test_dates: {fewer[0]} and valid_dates: {fewer[1]}")
        if self.purge:
            shorter = next(((h, f) for h in range(horizon_days - 1, 0, -1) if (f := self._largest(dates, h))), None)
            if shorter:
                options.append(f"a churn horizon of at most {shorter[0]} days{self._with(shorter[1])} (more dates get labelled then, too)")
            if unpurged := self._largest(dates, 0):
                options.append(f"model.split.purge: false{self._with(unpurged)} (training labels then overlap the later slices)")
        options.append(f"more history: as configured the split needs {self.test_dates} test, {self.valid_dates} validation "
                       f"and 1 training date, with {gap} days between the slices")
        return "what fits these dates: " + "; or ".join(options)

    def _largest(self, dates: list[dt.date], gap_days: int) -> tuple[int, int] | None:
        """The most (test, validation) dates, at most the configured ones, that fit with this purge."""
        return next(((t, v) for t in range(self.test_dates, 0, -1) for v in range(self.valid_dates, 0, -1)
                     if _fits(dates, gap_days, t, v)), None)

    def _with(self, fit: tuple[int, int]) -> str:
        return "" if fit == (self.test_dates, self.valid_dates) else f" with test_dates: {fit[0]} and valid_dates: {fit[1]}"


def _fits(dates: list[dt.date], gap_days: int, test: int, valid: int) -> bool:
    """Whether `test` + `valid` dates and at least one training date fit with a `gap_days` purge."""
    gap = dt.timedelta(days=gap_days)
    if len(dates) <= test:
        return False
    first_test = dates[-test]
    before = [d for d in dates if d + gap <= first_test and d < first_test][-valid:]
    return bool(before) and any(d + gap <= before[0] and d < before[0] for d in dates)


class TrainingConfig(BaseModel):
    """The `model:` section of the config: everything that affects the trained model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: ModelParams = ModelParams()
    split: SplitConfig = SplitConfig()
    tiers: TierPolicy = TierPolicy()
    registered_name: str = MODEL_NAME
