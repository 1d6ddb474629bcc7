"""`HealthModel`: LightGBM churn classifier + calibration + frozen tiers, in scikit-learn style.

Saved as plain files that load without unpickling anything: the booster as LightGBM text and
everything else (feature specs, categories, calibration, tier cut-offs, the reference
population's distributions) as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from healthscore.dataset import FeatureSpec
from healthscore.io import atomic_path
from healthscore.model.calibration import Calibrator
from healthscore.model.settings import ModelParams
from healthscore.model.tiers import TierPolicy, Tiers

BOOSTER_FILE = "booster.txt"
MODEL_FILE = "model.json"
QUANTILES = np.linspace(0, 1, 101)
PROBABILITY_QUANTILES = np.linspace(0, 1, 1001)


class HealthModel:
    """Fit on a training slice with a validation slice for early stopping and calibration."""

    def __init__(self, features: list[FeatureSpec], params: ModelParams | None = None, tier_policy: TierPolicy | None = None):
        self.features = list(features)
        self.params = params or ModelParams()
        self.tier_policy = tier_policy or TierPolicy()

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, X_valid: pd.DataFrame, y_valid) -> HealthModel:
        self.categories_ = {
            f.code: sorted(X[f.code].dropna().astype(str).unique().tolist()) for f in self.features if f.kind == "categorical"
        }
        monotone = [self._direction(f) if self.params.monotone else 0 for f in self.features]
        train = lgb.Dataset(self.matrix(X), np.asarray(y, dtype=float), categorical_feature=list(self.categories_) or "auto")
        valid = lgb.Dataset(self.matrix(X_valid), np.asarray(y_valid, dtype=float), reference=train)
        self.booster_ = lgb.train(
            self.params.lightgbm(monotone),
            train,
            num_boost_round=self.params.max_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.params.early_stopping_rounds, verbose=False)],
        )
        self.calibrator_ = Calibrator.fit(self.log_odds(X_valid), y_valid, self.params.calibration)
        reference_p = self.predict_proba(X)[:, 1]
        self.tiers_ = self.tier_policy.thresholds(reference_p)
        self.reference_ = {
            "rows": len(X),
            "probability_quantiles": np.quantile(reference_p, PROBABILITY_QUANTILES).tolist(),
            "features": {f.code: _distribution(X[f.code], f.kind) for f in self.features},
        }
        return self

    @staticmethod
    def _direction(f: FeatureSpec) -> int:
        """+1: more of this metric may only raise churn risk; -1: only lower it."""
        if f.kind == "categorical":
            return 0
        return {"higher": -1, "lower": 1}.get(f.good_direction, 0)

    def matrix(self, X: pd.DataFrame) -> pd.DataFrame:
        """The model's input: its features in training order, categories fixed to the training
        levels (unseen ones become missing). SHAP and plots must see exactly what the booster sees."""
        missing = [f.code for f in self.features if f.code not in X]
        if missing:
            raise ValueError(f"input has no column(s) {missing} that the model needs")
        out = {}
        for f in self.features:
            if f.kind == "categorical":
                out[f.code] = pd.Categorical(X[f.code].astype("string").astype(object), categories=self.categories_[f.code])
            else:
                out[f.code] = pd.to_numeric(X[f.code], errors="coerce").astype(float)
        return pd.DataFrame(out, index=X.index)

    # --- predicting ----------------------------------------------------------------------------
    def log_odds(self, X: pd.DataFrame) -> np.ndarray:
        """The booster's raw margin: the scale TreeSHAP contributions add up on."""
        return self.booster_.predict(self.matrix(X), raw_score=True)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.calibrator_.transform(self.log_odds(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Tier codes (healthy / at_risk / unhealthy): the model's class-like answer."""
        return self.tiers_.assign(self.predict_proba(X)[:, 1])

    def health_percentile(self, probability: np.ndarray) -> np.ndarray:
        """Share (0-100) of the reference population that is at higher churn risk."""
        q = np.asarray(self.reference_["probability_quantiles"])
        below = np.interp(probability, q, PROBABILITY_QUANTILES, left=0.0, right=1.0)
        return 100.0 * (1.0 - below)

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        """churn_probability, health_score (100 x (1 - p)), health_percentile, tier and its label/colour.
        From the booster's own margin, never the sum of SHAP contributions: that sum can differ in
        the last bit, enough to move an account sitting on a tier cut-off."""
        p = self.calibrator_.transform(self.log_odds(X))
        tier = self.tiers_.assign(p)
        return pd.DataFrame(
            {
                "churn_probability": p,
                "health_score": 100.0 * (1.0 - p),
                "health_percentile": self.health_percentile(p),
                "tier": tier,
                "tier_label": [self.tiers_.labels[t] for t in tier],
                "tier_color": [self.tiers_.colors[t] for t in tier],
            },
            index=X.index,
        )

    # --- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / BOOSTER_FILE) as tmp:
            self.booster_.save_model(str(tmp))
        state = {
            "format_version": 1,
            "features": [f.model_dump() for f in self.features],
            "categories": self.categories_,
            "params": self.params.model_dump(),
            "tier_policy": self.tier_policy.model_dump(),
            "best_iteration": self.booster_.best_iteration,
            "calibration": self.calibrator_.model_dump(),
            "tiers": self.tiers_.model_dump(),
            "reference": self.reference_,
            **(extra or {}),
        }
        with atomic_path(folder / MODEL_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> HealthModel:
        folder = Path(folder)
        state = json.loads((folder / MODEL_FILE).read_text())
        model = cls(
            [FeatureSpec.model_validate(f) for f in state["features"]],
            ModelParams.model_validate(state["params"]),
            TierPolicy.model_validate(state["tier_policy"]),
        )
        model.categories_ = state["categories"]
        model.booster_ = lgb.Booster(model_file=str(folder / BOOSTER_FILE))
        model.calibrator_ = Calibrator.model_validate(state["calibration"])
        model.tiers_ = Tiers.model_validate(state["tiers"])
        model.reference_ = state["reference"]
        model.metadata_ = {k: v for k, v in state.items() if k not in cls._STATE_KEYS}
        return model

    _STATE_KEYS = {"format_version", "features", "categories", "params", "tier_policy", "best_iteration", "calibration", "tiers", "reference"}


def _distribution(values: pd.Series, kind: str) -> dict:
    """What the reference population looked like: for rank texts and drift checks later."""
    missing = float(values.isna().mean())
    if kind == "categorical":
        shares = values.dropna().astype(str).value_counts(normalize=True)
        return {"missing_share": missing, "categories": {k: float(v) for k, v in shares.items()}}
    numeric = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    quantiles = np.quantile(numeric, QUANTILES).tolist() if len(numeric) else []
    return {"missing_share": missing, "quantiles": quantiles}
