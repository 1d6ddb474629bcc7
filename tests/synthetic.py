"""A synthetic modelling dataset whose churn drivers are known by construction."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from healthscore.dataset import Dataset, DatasetSpec, FeatureSpec


def synthetic_dataset(accounts: int = 1000, months: int = 12, seed: int = 3) -> Dataset:
    """Churn log-odds: a steep, saturating fall with usage (the strongest driver), a linear rise
    with tickets, and a small plan effect."""
    rng = np.random.default_rng(seed)
    base_usage = rng.gamma(2.0, 12.0, accounts)
    base_tickets = rng.poisson(2.0, accounts)
    plan = rng.choice(["starter", "pro", "enterprise"], accounts, p=[0.5, 0.35, 0.15])
    frames = []
    for m in range(months):
        usage = np.clip(base_usage * rng.lognormal(0, 0.25, accounts), 0, None)
        tickets = rng.poisson(base_tickets + 0.5)
        logit = -3.0 + 4.0 * np.exp(-usage / 10) + 0.25 * tickets + np.select([plan == "starter", plan == "enterprise"], [0.3, -0.3], 0.0)
        frames.append(pd.DataFrame({
            "account_id": [f"A{i:04d}" for i in range(accounts)],
            "as_of": dt.date(2023 + m // 12, 1 + m % 12, 1),
            "usage": usage,
            "tickets": tickets.astype(float),
            "plan": pd.array(plan, dtype="string"),
            "churned": pd.array(rng.random(accounts) < 1 / (1 + np.exp(-logit)), dtype="boolean"),
        }))
    spec = DatasetSpec(origin="catalogue", horizon_days=90, features=[
        FeatureSpec(code="usage", label="Active days (30d)", good_direction="higher", family="usage"),
        FeatureSpec(code="tickets", label="Support tickets (90d)", good_direction="lower", family="support"),
        FeatureSpec(code="plan", label="Plan", kind="categorical", family="commercial"),
    ])
    return Dataset(pd.concat(frames, ignore_index=True), spec)
