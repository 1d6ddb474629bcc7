"""Training settings: the `model:` section of the YAML config, and all that a run logs as params."""

from __future__ import annotations

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
    # "auto": the method with the lowest cross-validated log loss on the out-of-fold predictions
    calibration: Literal["auto", "isotonic", "sigmoid", "none"] = "auto"
    # contenders besides these settings: LightGBM smaller and larger, and a regularised logistic regression
    search: bool = True
    threads: int = Field(1, ge=0)  # 0: LightGBM's default (every core); one thread is fastest below ~100k rows
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
            **({"num_threads": self.threads} if self.threads else {}),
        }


class SplitConfig(BaseModel):
    """The outer test slice (latest dates, or a stratified share of accounts without dates), the
    cross-fitting folds of the rows before it, and the rolling-origin backtest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    test_dates: int = Field(3, ge=1)
    test_share: float = Field(0.2, gt=0, lt=1)  # dateless snapshot tables
    folds: int = Field(4, ge=2)
    purge: bool = True
    backtest_dates: int = Field(3, ge=0)  # 0: no backtest
    seed: int = 7


class TrainingConfig(BaseModel):
    """The `model:` section of the config: everything that affects the trained model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: ModelParams = ModelParams()
    split: SplitConfig = SplitConfig()
    tiers: TierPolicy = TierPolicy()
    # Good directions of metrics that state none (a snapshot table's columns) are inferred from the
    # development rows when |Spearman rho| with churn reaches this; `directions` overrides any metric.
    direction_min_strength: float = Field(0.05, gt=0, le=1)
    directions: dict[str, Literal["higher", "lower", "none"]] = {}
    registered_name: str = MODEL_NAME
