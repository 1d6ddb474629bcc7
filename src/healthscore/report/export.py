"""The account table as CSV for a CRM import: one row per account, its reasons flattened into
numbered columns, written atomically so an import never picks up half a file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from healthscore.io import atomic_path
from healthscore.scores_file import REASONS

LEADING = ["account_id", "account_name", "csm_owner", "segment", "plan", "as_of", "health_score", "health_percentile",
           "tier", "tier_label", "churn_probability", "mrr", "revenue_at_risk", "previous_score", "previous_tier",
           "score_change", "next_action"]
COLUMNS = [*LEADING,
           *[f"reason_{k}_{part}" for k in range(1, REASONS + 1) for part in ("code", "text", "points", "family", "action")],
           *[f"strength_{k}_{part}" for k in range(1, REASONS + 1) for part in ("code", "text", "points")],
           "model_name", "model_version"]
FREE_TEXT = ("account_name", "csm_owner")  # typed by people: may start like a spreadsheet formula
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_csv(accounts: pd.DataFrame, path: str | Path) -> Path:
    frame = accounts[COLUMNS].copy()
    for name in FREE_TEXT:
        frame[name] = frame[name].map(_defuse, na_action="ignore")
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _defuse(text: str) -> str:
    """A leading quote keeps a spreadsheet from running '=HYPERLINK(...)' as a formula."""
    return "'" + text if text.startswith(_FORMULA_START) else text
