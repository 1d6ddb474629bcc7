"""Good directions for metrics that state none (a snapshot table's columns), from the data.

A metric's direction is inferred from the development rows when its Spearman correlation with
churn reaches the minimum strength (settings: `direction_min_strength`) and is clear of sampling
noise (|rho| x sqrt(rows) >= 3, about p < 0.003); others stay without a direction. `directions` in the settings overrides any metric, stated or inferred.
The decisions are reported (`DIRECTION_COLUMNS`) so the user can see and overrule them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from healthscore.dataset import FeatureSpec
from healthscore.settings import TrainingConfig

DIRECTION_COLUMNS = ["metric", "label", "spearman_rho", "good_direction", "source"]
MIN_Z = 3.0


def resolve_directions(features: list[FeatureSpec], X: pd.DataFrame, y, config: TrainingConfig) -> tuple[list[FeatureSpec], pd.DataFrame]:
    """The features with their good directions settled, and a row per decision."""
    y = pd.Series(np.asarray(y, dtype=float), index=X.index)
    out, rows = [], []
    for f in features:
        rho, present = _spearman(X[f.code], y) if f.kind == "numeric" else (float("nan"), 0)
        if f.code in config.directions:
            direction, source = config.directions[f.code], "settings"
        elif f.good_direction != "none" or f.kind != "numeric":
            direction, source = f.good_direction, "stated"
        elif abs(rho) >= config.direction_min_strength and abs(rho) * np.sqrt(present) >= MIN_Z:
            direction, source = ("lower" if rho > 0 else "higher"), "inferred"
        else:
            direction, source = "none", f"weaker than {config.direction_min_strength:g} or within noise"
        out.append(f.model_copy(update={"good_direction": direction}))
        rows.append({"metric": f.code, "label": f.label, "spearman_rho": rho, "good_direction": direction, "source": source})
    return out, pd.DataFrame(rows, columns=DIRECTION_COLUMNS)


def _spearman(values: pd.Series, y: pd.Series) -> tuple[float, int]:
    """Spearman rho over the rows where the metric is present, and how many there are."""
    x = pd.to_numeric(values, errors="coerce")
    present = x.notna()
    if present.sum() < 3 or x[present].nunique() < 2 or y[present].nunique() < 2:
        return 0.0, int(present.sum())
    return float(x[present].rank().corr(y[present].rank())), int(present.sum())
