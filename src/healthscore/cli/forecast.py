"""`healthscore forecast`: churned and retained revenue ahead, with intervals and the backtest."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from healthscore.cli.console import console, handled

app = typer.Typer()


@app.command("forecast")
@handled
def forecast_cmd(
    config: Annotated[Path, typer.Option("--config", help="YAML config pointing at the raw tables.")],
    as_of: Annotated[dt.datetime, typer.Option("--as-of", formats=["%Y-%m-%d"], help="Forecast from this date (YYYY-MM-DD).")],
    out: Annotated[Path, typer.Option("--out", help="Forecast per period (.parquet or .csv); per account and backtest beside it.")],
    months: Annotated[int, typer.Option("--months", help="Months to forecast (1-24).")] = 12,
    by: Annotated[Optional[str], typer.Option("--by", help="Also break it down by segment, csm_owner or plan.")] = None,
) -> None:
    """Expected churned and retained MRR and GRR per month and quarter with 80%/95% intervals, from
    calibrated monthly churn hazards; backtested on past dates and logged to MLflow."""
    from healthscore.config import load_config
    from healthscore.forecasting import BACKTEST_MONTHS, forecast_revenue
    from healthscore.model.forecast import accounts_path_for, backtest_path_for

    with console.status("forecasting") as status:
        run = forecast_revenue(load_config(config), as_of.date(), months, by, out, progress=status.update)
    whole = run.forecast[run.forecast["by"] == "all"]
    table = Table(title=f"Forecast from {as_of.date()} (whole base; no expansion, no new accounts)")
    for col in ("period", "renewing MRR", "churned MRR", "80% interval", "retained MRR", "GRR (80%)"):
        table.add_column(col, justify="left" if col == "period" else "right")
    for r in whole.itertuples():
        table.add_row(r.period, f"{r.mrr_renewing:,.0f}", f"{r.expected_churned_mrr:,.0f}",
                      f"{r.churned_mrr_low80:,.0f} - {r.churned_mrr_high80:,.0f}", f"{r.expected_retained_mrr:,.0f}",
                      f"{r.grr:.1%} ({r.grr_low80:.1%} - {r.grr_high80:.1%})")
    console.print(table)
    console.print(f"Intervals: accounts churn independently given a shared month effect on every hazard (variance "
                  f"{whole['dispersion'].iloc[0]:.3f}, from the past months' swings); see docs/FORECAST.md")

    bt = run.backtest
    back = Table(title=f"Backtest: the {BACKTEST_MONTHS}-month forecast made at each past date against what happened")
    for col in ("as_of", "churned MRR: forecast", "80% interval", "actual", "inside 80%/95%", "churned accounts: forecast (80%)", "actual"):
        back.add_column(col, justify="right")
    for r in bt.itertuples():
        back.add_row(str(r.as_of), f"{r.expected_churned_mrr:,.0f}", f"{r.churned_mrr_low80:,.0f} - {r.churned_mrr_high80:,.0f}",
                     f"{r.actual_churned_mrr:,.0f}", f"{'yes' if r.inside80_churned_mrr else 'no'}/{'yes' if r.inside95_churned_mrr else 'no'}",
                     f"{r.expected_churned_accounts:.0f} ({r.churned_accounts_low80:.0f} - {r.churned_accounts_high80:.0f})",
                     f"{r.actual_churned_accounts:.0f}")
    console.print(back)
    s = run.backtest_summary()
    last = bt.tail(6)
    console.print(f"Backtest over {len(bt)} dates: churned MRR inside its 80% interval {s['coverage80_churned_mrr']:.0%} of the time "
                  f"(95%: {s['coverage95_churned_mrr']:.0%}; last {len(last)} dates: {int(last['inside80_churned_mrr'].sum())} of "
                  f"{len(last)}), mean absolute error {s['mean_abs_pct_error_churned_mrr']:.0%}; churned accounts inside 80% "
                  f"{s['coverage80_churned_accounts']:.0%} (95%: {s['coverage95_churned_accounts']:.0%})")
    console.print(f"Forecast: {out}; per account: {accounts_path_for(out)}; backtest: {backtest_path_for(out)}; MLflow run {run.run_id}")
