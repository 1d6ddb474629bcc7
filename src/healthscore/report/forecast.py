"""The report's forecast panel: expected retained MRR by month with its interval band, the
biggest renewals at risk in the next 90 days with their reasons, and the backtest's figures,
from the files `healthscore forecast` writes (the forecast, `.accounts` and `.backtest` beside it)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from healthscore.errors import DataError
from healthscore.model.forecast import INTERVALS, accounts_path_for, backtest_path_for

AT_RISK_DAYS = 90
AT_RISK_LISTED = 15


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"--forecast {path}: no such file (write it with healthscore forecast --out)")
    return pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)


def forecast_panel(path: str | Path) -> dict:
    """What the panel draws, JSON-ready."""
    path = Path(path)
    table, accounts, backtest = _read(path), _read(accounts_path_for(path)), _read(backtest_path_for(path))
    months = table[(table["by"] == "all") & (table["period_kind"] == "month")]
    as_of = pd.to_datetime(months["as_of"].iloc[0]).date()
    bands = [f"retained_mrr_{side}{level}" for level in INTERVALS for side in ("low", "high")]
    renewal = pd.to_datetime(accounts["next_renewal"]).dt.date
    soon = accounts[renewal.notna() & (renewal < as_of + dt.timedelta(days=AT_RISK_DAYS))].copy()
    soon["at_risk"] = soon["mrr"] * soon["churn_before_renewal"]
    soon = soon.sort_values("at_risk", ascending=False).head(AT_RISK_LISTED)
    reasons = [c for c in soon.columns if c.startswith("reason_") and c.endswith("_text")]
    return {
        "as_of": as_of.isoformat(),
        "mrr_start": float(months["mrr_start"].iloc[0]),
        "months": [{"period": r["period"], "expected": float(r["expected_retained_mrr"]), "grr": float(r["grr"]),
                    "churned": float(r["expected_churned_mrr"]), **{b: float(r[b]) for b in bands}}
                   for _, r in months.iterrows()],
        "quarters": [{"period": r["period"], "churned": float(r["expected_churned_mrr"]), "low80": float(r["churned_mrr_low80"]),
                      "high80": float(r["churned_mrr_high80"]), "grr": float(r["grr"])}
                     for _, r in table[(table["by"] == "all") & (table["period_kind"] == "quarter")].iterrows()],
        "renewals_at_risk": [{"id": r["account_id"], "name": "" if pd.isna(r.get("account_name")) else str(r.get("account_name")),
                              "renewal": str(pd.to_datetime(r["next_renewal"]).date()), "mrr": float(r["mrr"]),
                              "probability": float(r["churn_before_renewal"]),
                              "reasons": [str(r[c]) for c in reasons if isinstance(r[c], str)]}
                             for _, r in soon.iterrows()],
        "backtest": [{"as_of": str(pd.to_datetime(r["as_of"]).date()), "expected": float(r["expected_churned_mrr"]),
                      "low80": float(r["churned_mrr_low80"]), "high80": float(r["churned_mrr_high80"]),
                      "actual": float(r["actual_churned_mrr"]), "inside80": bool(r["inside80_churned_mrr"]),
                      "inside95": bool(r["inside95_churned_mrr"])} for _, r in backtest.iterrows()],
        "coverage80": float(backtest["inside80_churned_mrr"].mean()),
        "coverage95": float(backtest["inside95_churned_mrr"].mean()),
    }
