"""The business KPIs that CS leaders read beside the health score, with DOMAIN.md's formulas.

A period runs from one scoring run (start) to the next (end): an account scored at the start and
not at the end was lost, one scored only at the end is new. The scores record every active
account at each run, so the history alone gives the period's customers and revenue.
"""

from __future__ import annotations

import pandas as pd

PERIOD_KPIS = ("accounts_start", "new_accounts", "lost_accounts", "churn_rate", "crr", "mrr_start", "expansion_mrr")


def kpis(end: pd.DataFrame, start: pd.DataFrame | None = None) -> dict[str, float | int | None]:
    """`end` (account_id, mrr, churn_probability) is the latest run, `start` (account_id, mrr) the
    one before; without `start` the period KPIs are None. Missing MRR counts as 0."""
    end_mrr = end["mrr"].fillna(0.0)
    mrr = float(end_mrr.sum())
    out: dict[str, float | int | None] = {
        "accounts": len(end),
        "mrr": mrr,
        "arpa": mrr / len(end) if len(end) else None,
        "revenue_at_risk": float((end_mrr * end["churn_probability"]).sum()),
        **dict.fromkeys(PERIOD_KPIS),
    }
    if start is None:
        return out
    s, e = len(start), len(end)
    start_ids, end_ids = set(start["account_id"]), set(end["account_id"])
    new, lost = len(end_ids - start_ids), len(start_ids - end_ids)
    retained = start[["account_id", "mrr"]].merge(end[["account_id", "mrr"]], on="account_id", suffixes=("_start", "_end"))
    growth = (retained["mrr_end"].fillna(0.0) - retained["mrr_start"].fillna(0.0)).clip(lower=0.0)
    out.update(
        accounts_start=s,
        new_accounts=new,
        lost_accounts=lost,
        churn_rate=lost / s if s else None,  # customers lost / customers at start
        crr=(e - new) / s * 100 if s else None,  # ((E - N) / S) x 100
        mrr_start=float(start["mrr"].fillna(0.0).sum()),
        expansion_mrr=float(growth.sum()),  # MRR increases of retained accounts only
    )
    return out
