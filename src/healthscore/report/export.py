"""The account table as CSV for a CRM import: one row per account, its reasons flattened into
numbered columns, written atomically so an import never picks up half a file."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from healthscore.io import atomic_path
from healthscore.scores_file import REASONS

LEADING = ["account_id", "account_name", "csm_owner", "segment", "plan", "as_of", "health_score", "health_percentile",
           "tier", "tier_label", "csm_tier", "csm_reason", "csm_by", "csm_until", "csm_expired", "churn_probability", "mrr", "revenue_at_risk", "previous_score", "previous_tier",
           "score_change", "next_action"]
COLUMNS = [*LEADING,
           *[f"reason_{k}_{part}" for k in range(1, REASONS + 1) for part in ("code", "text", "points", "family", "action")],
           *[f"strength_{k}_{part}" for k in range(1, REASONS + 1) for part in ("code", "text", "points")],
           "model_name", "model_version"]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[-+]?\d+(\.\d+)?([eE][-+]?\d+)?")


def write_csv(accounts: pd.DataFrame, path: str | Path) -> Path:
    """Every text cell (ids, names, owners, segments, reasons) is defused: any of them can come
    from a source a user does not control."""
    frame = accounts[COLUMNS].copy()
    for name in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[name]):
            frame[name] = frame[name].map(_defuse, na_action="ignore")
    path = Path(path)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path


def _defuse(value) -> object:
    """A leading quote keeps a spreadsheet from running '=HYPERLINK(...)' as a formula; a plain
    signed number is left as it is."""
    if not isinstance(value, str) or not value.startswith(_FORMULA_START) or _NUMBER.fullmatch(value):
        return value
    return "'" + value
