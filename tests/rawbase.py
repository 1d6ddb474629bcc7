"""A tiny hand-made raw customer base whose every metric can be worked out by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import yaml

D = dt.date


def tables() -> dict[str, pd.DataFrame]:
    accounts = pd.DataFrame({
        "account_id": ["A1", "A2", "A3", "A4"],
        "name": ["Acme", "Bolt", "Cora", "Dune"],
        "segment": ["SMB", "enterprise", "SMB", "mid-market"],
        "industry": ["retail", "tech", "tech", "health"],
        "region": ["EU", "NA", "EU", "NA"],
        "created_at": [D(2023, 1, 10), D(2023, 6, 1), D(2024, 2, 15), D(2023, 3, 1)],
        "csm_owner": ["Kim", "Lee", "Kim", "Lee"],
    })
    subscriptions = pd.DataFrame({
        "subscription_id": ["S1", "S2", "S3", "S4", "S5", "S6"],
        "account_id": ["A1", "A2", "A2", "A3", "A4", "A4"],
        "plan": ["starter", "enterprise", "enterprise", "starter", "growth", "growth"],
        "seats": [10, 100, 80, 5, 20, 20],
        "mrr": [300.0, 9000.0, 7200.0, 150.0, 1500.0, 1500.0],
        "term": ["monthly", "annual", "annual", "monthly", "annual", "annual"],
        "start_date": [D(2023, 1, 10), D(2023, 6, 1), D(2024, 6, 1), D(2024, 2, 15), D(2023, 3, 1), D(2024, 3, 1)],
        "renewal_date": [D(2023, 2, 10), D(2024, 6, 1), D(2025, 6, 1), D(2024, 3, 15), D(2024, 3, 1), D(2025, 3, 1)],
        # A1 churns 2024-05-20; A2 contracts at its June renewal and stays; A3 churns 2024-09-10;
        # A4 renews in March and cancels on 2024-05-10: only its latest row carries the end date.
        "end_date": [D(2024, 5, 20), None, None, D(2024, 9, 10), None, D(2024, 5, 10)],
    })
    users = pd.DataFrame({
        "user_id": ["U1", "U2", "U3", "U4", "U5", "U6"],
        "account_id": ["A1", "A1", "A2", "A2", "A3", "A4"],
        "created_at": [D(2023, 1, 10), D(2024, 1, 5), D(2023, 6, 1), D(2024, 1, 20), D(2024, 2, 15), D(2023, 3, 1)],
        "deactivated_at": [None] * 6,
    })
    ev = []
    for day in pd.date_range("2024-01-01", "2024-05-31"):
        d = day.date()
        if d < D(2024, 5, 20):
            ev.append(("A1", "U1", d, "login", 2.0))
            ev.append(("A1", "U1", d, "session_minutes", 30.0))
        if d.day % 2 == 0:
            ev.append(("A2", "U3", d, "login", 1.0))
            ev.append(("A2", "U3", d, "reports", 3.0))
        if d.day == 1:
            ev.append(("A2", "U4", d, "login", 1.0))
            ev.append(("A2", "U4", d, "ai_assistant", 1.0))
    ev.append(("A2", "U3", D(2024, 1, 25), "dashboards", 1.0))  # within 30 days of U4 joining? no: U3
    events = pd.DataFrame(ev, columns=["account_id", "user_id", "event_date", "event_type", "quantity"])
    tickets = pd.DataFrame({
        "ticket_id": ["T1", "T2", "T3"],
        "account_id": ["A2", "A2", "A1"],
        "opened_at": pd.to_datetime(["2024-02-10 09:00", "2024-03-25 10:00", "2024-03-01 08:00"]),
        # T2 is closed after the 2024-04-01 observation: its CSAT and FCR are unknown then.
        "closed_at": pd.to_datetime(["2024-02-11 09:00", "2024-04-03 10:00", "2024-03-01 12:00"]),
        "priority": ["urgent", "normal", "low"],
        "topic": ["outage", "bug", "how-to"],
        "escalated": [True, False, False],
        "solved_on_first_contact": [False, True, True],
        "csat": [2.0, 5.0, 4.0],
    })
    invoices = pd.DataFrame({
        "invoice_id": ["I1", "I2", "I3"],
        "account_id": ["A1", "A1", "A2"],
        "issued_at": [D(2024, 2, 1), D(2024, 3, 1), D(2024, 1, 1)],
        "due_at": [D(2024, 2, 15), D(2024, 3, 15), D(2024, 1, 31)],
        "paid_at": [D(2024, 2, 25), D(2024, 4, 10), D(2024, 1, 20)],
        "reminder_sent_at": [D(2024, 2, 20), D(2024, 3, 25), None],
        "amount": [300.0, 300.0, 27000.0],
    })
    surveys = pd.DataFrame({
        "survey_id": ["V1", "V2", "V3"],
        "account_id": ["A2", "A2", "A1"],
        "user_id": ["U3", "U4", "U1"],
        "responded_at": [D(2024, 1, 15), D(2024, 3, 10), D(2024, 2, 1)],
        "nps": [9, 5, 10],
    })
    engagements = pd.DataFrame({
        "engagement_id": ["E1", "E2", "E3"],
        "account_id": ["A1", "A1", "A2"],
        "occurred_at": [D(2024, 2, 5), D(2024, 3, 5), D(2024, 3, 20)],
        "channel": ["email", "meeting", "training"],
        "responded": [False, True, True],
    })
    return {"accounts": accounts, "subscriptions": subscriptions, "users": users, "events": events,
            "tickets": tickets, "invoices": invoices, "surveys": surveys, "engagements": engagements}


def config_dict() -> dict:
    return {
        "sources": {name: {"path": f"{name}.parquet"} for name in tables()}
        | {"events": {"path": "events.parquet", "event_kinds": {"login": ["login"], "session_minutes": ["session_minutes"],
                                                              "feature": ["reports", "dashboards"], "new_feature": ["ai_assistant"]}}},
        "churn": {"horizon_days": 90},
        "metrics": {"unusable": "drop"},  # the tiny base has no billing ticket and no MRR change
        "schedule": {"start": "2024-02-01", "end": "2024-06-01", "every": "month"},
        "data_end": "2024-06-01",
    }


def write(folder: Path, frames: dict[str, pd.DataFrame] | None = None, config: dict | None = None) -> Path:
    """Write the tables as Parquet and a config beside them; returns the config's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in (frames or tables()).items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    path = folder / "healthscore.yaml"
    path.write_text(yaml.safe_dump(config or config_dict(), sort_keys=False))
    return path
