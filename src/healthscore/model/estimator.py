"""`HealthModel`: a churn classifier (LightGBM, or a logistic regression when that family wins)
+ calibration + frozen tiers, in scikit-learn style.

The only way into a fitted model: other modules ask it for probabilities, scores, tiers and
exact per-metric contributions, never for its booster or calibrator. Saved as plain files that
load without unpickling anything: a booster as LightGBM text, a logistic regression's
coefficients and everything else (feature specs, categories, calibration, tier cut-offs, the
reference population, provenance) as JSON.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn.exceptions import NotFittedError

from healthscore.dataset import FeatureSpec
from healthscore.errors import ModelIntegrityError, ModelNotFound
from healthscore.io import atomic_path
from healthscore.model.calibration import Calibrator
from healthscore.model.linear import LinearModel
from healthscore.model.tiers import Tiers, freeze_model_tiers
from healthscore.settings import ModelParams, TierPolicy

BOOSTER_FILE = "booster.txt"
MODEL_FILE = "model.json"
MANIFEST_FILE = "manifest.json"  # SHA-256 of the two files above, checked at every load
QUANTILES = np.linspace(0, 1, 101)
PROBABILITY_QUANTILES = np.linspace(0, 1, 1001)
FAMILIES = ("lightgbm", "logistic")


class FeatureDistribution(BaseModel):
    """One metric in the reference population: for rank texts, codes and drift checks."""

    model_config = ConfigDict(extra="forbid")

    missing_share: float
    quantiles: list[float] | None = None  # numeric: the 101 percentiles of the present values
    categories: dict[str, float] | None = None  # categorical: each level's share of the present values


class Reference(BaseModel):
    """What the training population looked like."""

    rows: int
    probability_quantiles: list[float]  # the calibrated churn probability's 1001 quantiles
    features: dict[str, FeatureDistribution]


class Provenance(BaseModel):
    """Where a saved model came from: written by the registry when it logs the model."""

    model_config = ConfigDict(extra="allow")

    model_name: str = ""
    run_id: str = ""
    trained_on: dict[str, list[str]] = {}  # slice -> [first as_of, last as_of]
    trained_until: str | None = None  # the last as_of whose rows the shipped model learned from
    test_metrics: dict[str, float] = {}
    horizon_days: int | None = None  # the churn label's horizon: what the probability is of
    backtest: list[dict[str, float | str | None]] = []  # one row per backtest date (see model.backtest)


class HealthModel:
    """Calibrated churn model with frozen tiers.

    Parameters
    ----------
    features : list of FeatureSpec
        The metrics, in the order the booster sees them.
    params : ModelParams
    tier_policy : TierPolicy
    family : "lightgbm" or "logistic"

    Attributes
    ----------
    booster_ : lightgbm.Booster
        The lightgbm family's trees.
    linear_ : LinearModel
        The logistic family's coefficients.
    calibrator_ : Calibrator
        Log-odds -> calibrated churn probability.
    categories_ : dict of str to list of str
        Training levels of each categorical metric (unseen levels become missing).
    tiers_ : Tiers
        Probability cut-offs frozen on the training population.
    reference_ : Reference
    provenance_ : Provenance
    best_iteration_ : int
        Boosting rounds (0 for the logistic family).
    """

    def __init__(self, features: list[FeatureSpec], params: ModelParams | None = None, tier_policy: TierPolicy | None = None,
                 family: str = "lightgbm"):
        if family not in FAMILIES:
            raise ValueError(f"unknown model family {family!r}; one of {FAMILIES}")
        self.features = features
        self.params = params or ModelParams()
        self.tier_policy = tier_policy or TierPolicy()
        self.family = family

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, X: pd.DataFrame, y, X_valid: pd.DataFrame | None = None, y_valid=None,
            calibrator: Calibrator | None = None) -> HealthModel:
        """Fit on `X`, then calibrate: with `calibrator` (fitted on out-of-fold predictions by the
        caller), else on the validation slice. A LightGBM model early-stops on the validation
        slice, or without one runs `params.max_rounds` rounds."""
        self.fit_scorer(X, y, X_valid, y_valid)
        self.calibrator_ = calibrator or Calibrator.fit(self.log_odds(X_valid), y_valid, self.params.calibration, self.params.seed)
        reference_z = self.log_odds(X)
        reference_p = self.probability(reference_z)
        self.tiers_ = freeze_model_tiers(self.tier_policy, reference_z, self.probability)
        self.reference_ = Reference(
            rows=len(X),
            probability_quantiles=np.quantile(reference_p, PROBABILITY_QUANTILES).tolist(),
            features={f.code: _distribution(X[f.code], f.kind) for f in self.features},
        )
        self.provenance_ = Provenance()
        return self

    def fit_scorer(self, X: pd.DataFrame, y, X_valid: pd.DataFrame | None = None, y_valid=None) -> HealthModel:
        """Fit the log-odds only (no calibration, tiers or reference): what a cross-fitting fold needs."""
        params = self.params
        self.categories_ = {
            f.code: sorted(X[f.code].dropna().astype(str).unique().tolist()) for f in self.features if f.kind == "categorical"
        }
        signs = {f.code: self._direction(f) if params.monotone else 0 for f in self.features}
        if self.family == "logistic":
            self.linear_ = LinearModel.fit(self.features, self.matrix(X), y, signs)
            self.best_iteration_ = 0
            return self
        train = lgb.Dataset(self.matrix(X), np.asarray(y, dtype=float), categorical_feature=list(self.categories_) or "auto")
        stopping = {}
        if X_valid is not None:
            stopping = {"valid_sets": [lgb.Dataset(self.matrix(X_valid), np.asarray(y_valid, dtype=float), reference=train)],
                        "callbacks": [lgb.early_stopping(params.early_stopping_rounds, verbose=False)]}
        self.booster_ = lgb.train(params.lightgbm(list(signs.values())), train, num_boost_round=params.max_rounds, **stopping)
        self.best_iteration_ = self.booster_.best_iteration or self.booster_.current_iteration()
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "booster_" if self.family == "lightgbm" else "linear_"):
            raise NotFittedError("this HealthModel is not fitted: call fit() or HealthModel.load() first")

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
        """The model's raw margin: the scale the contributions add up on."""
        self._check_fitted()
        if self.family == "logistic":
            return self.linear_.log_odds(self.matrix(X))
        return self.booster_.predict(self.matrix(X), raw_score=True)

    def contributions(self, X: pd.DataFrame) -> np.ndarray:
        """Exact TreeSHAP contributions to the log-odds, shape (n_samples, n_features + 1): one
        column per feature in `features` order, the last the expected value; rows add up to
        `log_odds(X)`. The one SHAP engine of the package (reasons, weights, plots); linear SHAP
        (exact too) for the logistic family."""
        self._check_fitted()
        if self.family == "logistic":
            return self.linear_.contributions(self.matrix(X), [f.code for f in self.features])
        return self._explainers()[0].contributions(self.matrix(X))

    def change_contributions(self, X: pd.DataFrame, reference: pd.DataFrame) -> np.ndarray:
        """Exact attribution of the log-odds move from each `reference` row to its `X` row (paired by
        position), shape (n_samples, n_features): baseline Shapley values with the reference as
        the single background row. They add up to the move, are 0 for a metric whose value did not
        change, and under a monotone constraint have the sign of the metric's move. (For the
        logistic family the difference of the two rows' linear contributions is exactly that.)"""
        self._check_fitted()
        if self.family == "logistic":
            return self.contributions(X)[:, :-1] - self.contributions(reference)[:, :-1]
        return self._explainers()[1].attributions(self.matrix(X), self.matrix(reference))

    def _explainers(self):
        """The exact TreeSHAP and change kernels of this booster, built once per model (numba:
        compiled code comes from the on-disk cache, the tables are filled here)."""
        if getattr(self, "_kernels", None) is None:
            from healthscore.model.change_shap import ChangeExplainer
            from healthscore.model.treeshap import TreeExplainer

            explainer = TreeExplainer(self.booster_)
            self._kernels = (explainer, ChangeExplainer(explainer.ensemble))
        return self._kernels

    def probability(self, log_odds: np.ndarray) -> np.ndarray:
        """Calibrated churn probability of a log-odds value."""
        self._check_fitted()
        return self.calibrator_.transform(log_odds)

    def health_score(self, log_odds: np.ndarray) -> np.ndarray:
        """The health score (0-100) of a log-odds value: linear in the log-odds (see `tiers_.scale`)."""
        self._check_fitted()
        return self.tiers_.scale.score(log_odds)

    def score_table(self, scores: np.ndarray = np.arange(0, 101, 10)) -> pd.DataFrame:
        """The calibrated churn probability at each health score: what a score means."""
        scores = np.asarray(scores, dtype=float)
        return pd.DataFrame({"health_score": scores, "churn_probability": self.probability(self.tiers_.scale.log_odds(scores))})

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.probability(self.log_odds(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Tier codes (healthy / at_risk / unhealthy): the model's class-like answer."""
        return self.tiers_.assign_scores(self.health_score(self.log_odds(X)))

    def health_percentile(self, probability: np.ndarray) -> np.ndarray:
        """Share (0-100) of the reference population that is at higher churn risk."""
        q = np.asarray(self.reference_.probability_quantiles)
        below = np.interp(probability, q, PROBABILITY_QUANTILES, left=0.0, right=1.0)
        return 100.0 * (1.0 - below)

    def score(self, X: pd.DataFrame, previous_tier: pd.Series | None = None) -> pd.DataFrame:
        """churn_probability, health_score, health_percentile, tier and its label/colour.
        From the booster's own margin, never the sum of SHAP contributions: that sum can differ in
        the last bit, enough to move an account sitting on a tier cut-off. With each row's
        `previous_tier` (aligned on X, missing where none), tiers keep the policy's stability margin."""
        z = self.log_odds(X)
        p, health = self.probability(z), self.health_score(z)
        previous = None if previous_tier is None else previous_tier.reindex(X.index).to_numpy(dtype=object)
        tier = self.tiers_.assign_scores(health, previous, self.tier_policy.stability_margin)
        return pd.DataFrame(
            {
                "churn_probability": p,
                "health_score": health,
                "health_percentile": self.health_percentile(p),
                "tier": tier,
                "tier_label": [self.tiers_.labels[t] for t in tier],
                "tier_color": [self.tiers_.colors[t] for t in tier],
            },
            index=X.index,
        )

    # --- persistence ---------------------------------------------------------------------------
    def save(self, folder: str | Path, provenance: Provenance | None = None) -> Path:
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self.family == "lightgbm":
            with atomic_path(folder / BOOSTER_FILE) as tmp:
                self.booster_.save_model(str(tmp))
        state = {
            "format_version": 2,  # 2: the score scale, the manifest, the family
            "family": self.family,
            **({"linear": self.linear_.model_dump()} if self.family == "logistic" else {}),
            "features": [f.model_dump(mode="json") for f in self.features],  # a reading's date floor is a date
            "categories": self.categories_,
            "params": self.params.model_dump(),
            "tier_policy": self.tier_policy.model_dump(),
            "best_iteration": self.best_iteration_,
            "calibration": self.calibrator_.model_dump(),
            "tiers": self.tiers_.model_dump(),
            "reference": self.reference_.model_dump(exclude_none=True),
            **(provenance or self.provenance_).model_dump(),
        }
        with atomic_path(folder / MODEL_FILE) as tmp:
            tmp.write_text(json.dumps(state, indent=1))
        with atomic_path(folder / MANIFEST_FILE) as tmp:
            files = [MODEL_FILE] + ([BOOSTER_FILE] if self.family == "lightgbm" else [])
            tmp.write_text(json.dumps({name: _sha256(folder / name) for name in files}, indent=1))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> HealthModel:
        folder = Path(folder)
        checked = _check_manifest(folder)
        try:
            state = json.loads((folder / MODEL_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise ModelNotFound(f"{folder}: no readable saved model ({MODEL_FILE}: {exc})") from None
        model = cls(
            [FeatureSpec.model_validate(f) for f in state["features"]],
            ModelParams.model_validate(state["params"]),
            TierPolicy.model_validate(state["tier_policy"]),
            state.get("family", "lightgbm"),
        )
        model.categories_ = state["categories"]
        if model.family == "logistic":
            model.linear_ = LinearModel.model_validate(state["linear"])
        else:
            if BOOSTER_FILE not in checked:
                raise ModelIntegrityError(f"{folder}: {BOOSTER_FILE} is not in the model's manifest; not loaded")
            model.booster_ = lgb.Booster(model_file=str(folder / BOOSTER_FILE))
        model.best_iteration_ = state["best_iteration"]
        model.calibrator_ = Calibrator.model_validate(state["calibration"])
        model.tiers_ = Tiers.model_validate(state["tiers"])
        model.reference_ = Reference.model_validate(state["reference"])
        model.provenance_ = Provenance.model_validate({k: v for k, v in state.items() if k not in cls._STATE_KEYS})
        return model

    _STATE_KEYS = {"format_version", "family", "linear", "features", "categories", "params", "tier_policy", "best_iteration",
                   "calibration", "tiers", "reference"}


def _distribution(values: pd.Series, kind: str) -> FeatureDistribution:
    missing = float(values.isna().mean())
    if kind == "categorical":
        shares = values.dropna().astype(str).value_counts(normalize=True)
        return FeatureDistribution(missing_share=missing, categories={k: float(v) for k, v in shares.items()})
    numeric = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    quantiles = np.quantile(numeric, QUANTILES).tolist() if len(numeric) else []
    return FeatureDistribution(missing_share=missing, quantiles=quantiles)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_manifest(folder: Path) -> set[str]:
    """Refuse a saved model whose files are not the ones it was saved with: an edited booster
    would score silently wrong, and a corrupt one could take LightGBM down with it."""
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise ModelIntegrityError(f"{folder}: no {MANIFEST_FILE}; only models saved by healthscore (with the SHA-256 of "
                                  "their files) are loaded")
    try:
        expected = json.loads(manifest.read_text())
    except ValueError:
        raise ModelIntegrityError(f"{manifest}: not a valid manifest") from None
    if not isinstance(expected, dict) or MODEL_FILE not in expected:
        raise ModelIntegrityError(f"{manifest}: lists no {MODEL_FILE}")
    for name, digest in expected.items():
        path = folder / str(name)
        if not path.is_file():
            raise ModelNotFound(f"{path}: missing from the saved model")
        if _sha256(path) != digest:
            raise ModelIntegrityError(f"{path}: SHA-256 differs from the model's manifest: the file was changed after the model "
                                      "was saved; not loaded")
    return set(expected)
