"""CSM judgement on the record: an override says a CSM disagrees with the model's tier for an
account, why (a code from `override_reasons.yaml`), until when, and who. Stored beside the scores
in the history file, shown beside the model's tier (never in place of it), and judged once the
outcome is known: who was right, the model or the CSM. Overrides never feed training labels:
labels come from the subscriptions alone (build/labels.py).

Table (this module's own storage):
- `overrides`: one row per override: the account, the scored date it disagrees with, the
  model's tier then, the CSM's tier, reason, note, who, when recorded and until when.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml

from healthscore.build.labels import churn_outcomes
from healthscore.config import Config
from healthscore.errors import HistoryError, UserError
from healthscore.history.store import as_date, latest, open_history, open_history_for_writing
from healthscore.scores_file import TIERS

REASONS_FILE = Path(__file__).with_name("override_reasons.yaml")
DEFAULT_DAYS = 90
RISK = {tier: rank for rank, tier in enumerate(TIERS)}  # healthy 0 < at_risk 1 < unhealthy 2
SCHEMA = """
CREATE TABLE IF NOT EXISTS overrides (
    override_id INTEGER PRIMARY KEY, account_id VARCHAR, as_of DATE, model_tier VARCHAR, csm_tier VARCHAR,
    reason VARCHAR, note VARCHAR, created_by VARCHAR, created_at TIMESTAMP, until DATE
)"""
COLUMNS = ["override_id", "account_id", "as_of", "model_tier", "csm_tier", "reason", "note", "created_by", "created_at", "until"]


def reasons() -> dict[str, str]:
    """The reason codes a CSM may give, with what each means."""
    return {str(k): str(v) for k, v in yaml.safe_load(REASONS_FILE.read_text()).items()}


def record_override(db: str | Path, account_id: str, tier: str, reason: str, by: str, note: str | None = None,
                    until: str | dt.date | None = None, today: dt.date | None = None) -> dict:
    """Record that `by` puts `account_id` in `tier` against the model's latest tier for it; returns
    the stored row. Refuses an unknown account, tier or reason, an empty name, an `until` that is
    not after today and a tier the model already gives."""
    today = today or dt.date.today()
    known = reasons()
    if tier not in TIERS:
        raise UserError(f"--tier {tier!r}: not a tier; give one of {', '.join(TIERS)}")
    if reason not in known:
        raise UserError(f"--reason {reason!r}: not a known reason code; give one of {', '.join(known)} "
                        f"(edit {REASONS_FILE.name} to add one)")
    if not by.strip():
        raise UserError("--by: give the name of the CSM who disagrees")
    try:
        end = today + dt.timedelta(days=DEFAULT_DAYS) if until is None else as_date(until)
    except HistoryError:
        raise UserError(f"--until {until}: not a date (use YYYY-MM-DD)") from None
    if end <= today:
        raise UserError(f"--until {end}: the date is not after today ({today}); an override must end in the future")
    with open_history(db) as con:
        found = con.execute(f"""SELECT as_of, tier FROM ({latest("account_id = ?")}) ORDER BY as_of DESC LIMIT 1""",
                            [account_id]).fetchone()
    if found is None:
        raise UserError(f"account {account_id!r}: never scored in {db}; override an account the history holds")
    as_of, model_tier = found
    if model_tier == tier:
        raise UserError(f"account {account_id}: the model already puts it in {tier} (scored {as_of}); nothing to override")
    row = {"account_id": account_id, "as_of": as_of, "model_tier": model_tier, "csm_tier": tier, "reason": reason,
           "note": note or None, "created_by": by.strip(), "created_at": dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
           "until": end}
    with open_history_for_writing(db) as con:
        con.execute(SCHEMA)
        row = {"override_id": con.execute("SELECT coalesce(max(override_id), 0) + 1 FROM overrides").fetchone()[0], **row}
        con.execute(f"INSERT INTO overrides ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})",
                    [row[c] for c in COLUMNS])
    return row


def list_overrides(db: str | Path, today: dt.date | None = None) -> pd.DataFrame:
    """Every override, newest first, with `expired` (its `until` has passed) and `current`
    (the account's latest override, the one shown beside its score)."""
    today = today or dt.date.today()
    with open_history(db) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'overrides'").fetchone()[0]:
            return pd.DataFrame(columns=[*COLUMNS, "expired", "current"])
        frame = con.execute(f"SELECT {', '.join(COLUMNS)} FROM overrides ORDER BY created_at DESC, override_id DESC").df()
    for column in ("as_of", "until"):
        frame[column] = pd.to_datetime(frame[column]).dt.date
    frame["expired"] = frame["until"] < today
    frame["current"] = ~frame["account_id"].duplicated()
    return frame


def csm_tiers(db: str | Path | None, today: dt.date | None = None) -> pd.DataFrame:
    """Per account with an override, its latest: csm_tier, reason, by, until, expired (indexed by
    account_id); empty without a history or overrides. What scores and exports show beside the
    model's tier."""
    columns = ["csm_tier", "csm_reason", "csm_by", "csm_until", "csm_expired"]
    if db is None or not Path(db).exists():
        return pd.DataFrame(columns=columns, index=pd.Index([], name="account_id"))
    found = list_overrides(db, today)
    found = found[found["current"].astype(bool)].set_index("account_id")  # an object column would select columns
    return found.rename(columns={"reason": "csm_reason", "created_by": "csm_by", "until": "csm_until",
                                 "expired": "csm_expired"})[columns]


def evaluate_overrides(db: str | Path, config: Config, today: dt.date | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Who was right on the overridden accounts, once the outcome is known: did the account churn
    within the health score's horizon after the date the CSM disagreed with? Returns each
    override with `churned` (missing while pending) and `right` (model / csm), and the churn rate
    by the model's tier beside the churn rate by the CSM's tier, with counts."""
    found = list_overrides(db, today)
    if found.empty:
        raise HistoryError(f"{db}: no overrides recorded yet (healthscore override ACCOUNT_ID ...)")
    outcomes = pd.DataFrame(churn_outcomes(config, list(found["as_of"].unique())), columns=["account_id", "as_of", "churned"])
    found = found.merge(outcomes, on=["account_id", "as_of"], how="left")
    churned = found["churned"].astype("boolean")
    model_riskier = found["model_tier"].map(RISK) > found["csm_tier"].map(RISK)
    # a churn proves the riskier call right, a stay the healthier one
    found["right"] = pd.Series(pd.NA, index=found.index, dtype="string")
    known = churned.notna()
    found.loc[known, "right"] = [("model" if m == c else "csm") for m, c in zip(model_riskier[known], churned[known])]
    judged = found[known].assign(churned=churned[known].astype(bool))
    rows = []
    for side in ("model_tier", "csm_tier"):
        for tier in TIERS:
            group = judged[judged[side] == tier]
            rows.append({"by": side.removesuffix("_tier"), "tier": tier, "accounts": len(group), "churned": int(group["churned"].sum()),
                         "churn_rate": float(group["churned"].mean()) if len(group) else float("nan")})
    return found, pd.DataFrame(rows)
