"""Training settings: the `model:` section of the YAML config, and all that a run logs as params."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from healthscore.model.tiers import TierPolicy


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
    model_config = ConfigDict(extra="forbid", frozen=True)

    test_dates: int = Field(3, ge=1)
    valid_dates: int = Field(3, ge=1)
    purge: bool = True
    seed: int = 7


class TrainingConfig(BaseModel):
    """The `model:` section of the config: everything that affects the trained model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    params: ModelParams = ModelParams()
    split: SplitConfig = SplitConfig()
    tiers: TierPolicy = TierPolicy()
    registered_name: str = "customer-health"
