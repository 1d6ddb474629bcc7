"""The scores file: what every scoring path writes and every reader (history, report, CRM export)
may rely on. Its columns, the reason columns' names, the tiers and which model scored live here,
beside the files written next to a scores file, so writer and readers cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

TIERS = ("healthy", "at_risk", "unhealthy")
REASONS = 3  # reason_1..3 pull the score down most; strength_1..3 hold it up most
REASON_SIDES = ("reason", "strength")
REASON_PARTS = {"code": "VARCHAR", "text": "VARCHAR", "points": "DOUBLE"}
ATTRIBUTES = ("account_name", "csm_owner")  # who the account is and who owns it: carried, not features


def reason_columns(side: str | None = None) -> list[str]:
    """`reason_1_code`, `reason_1_text`, `reason_1_points`, ... in file order (one side or both)."""
    sides = REASON_SIDES if side is None else (side,)
    return [f"{s}_{k}_{part}" for s in sides for k in range(1, REASONS + 1) for part in REASON_PARTS]


# name -> DuckDB type, in file order
SCORE_COLUMNS: dict[str, str] = {
    "account_id": "VARCHAR",
    "as_of": "DATE",
    "churn_probability": "DOUBLE",
    "health_score": "DOUBLE",
    "health_percentile": "DOUBLE",
    "tier": "VARCHAR",
    "tier_color": "VARCHAR",
    **{name: REASON_PARTS[name.rsplit("_", 1)[1]] for name in reason_columns()},
    "baseline_score": "DOUBLE",
    "contributions": "JSON",  # every metric's points
    "metric_values": "JSON",  # every metric's value (null = missing)
    "model_name": "VARCHAR",
    "model_version": "VARCHAR",
    "model_run_id": "VARCHAR",
    "scored_at": "TIMESTAMP",  # UTC
}
NUMERIC_COLUMNS = [name for name, kind in SCORE_COLUMNS.items() if kind == "DOUBLE"]


@dataclass(frozen=True)
class ModelRef:
    """Which model scored: recorded beside every score so a model change is never mistaken for a
    change of behaviour."""

    name: str
    version: str
    run_id: str


def scored_now() -> str:
    """The `scored_at` stamp: UTC, to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def rejected_path_for(output: Path) -> Path:
    """Rows set aside by a run, beside its output and in the same format."""
    return output.with_name(output.stem + ".rejected" + output.suffix)


def metadata_path_for(output: Path) -> Path:
    """The run's metadata (model, counts, tiers, drift, timings) beside its output."""
    return output.with_name(output.stem + ".meta.json")
