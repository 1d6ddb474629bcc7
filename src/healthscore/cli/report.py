"""`healthscore report`: the CSM-facing HTML report, and the account table as CSV for a CRM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from healthscore.cli.console import console, handled

app = typer.Typer()


@app.command("report")
@handled
def report_cmd(
    scores: Annotated[Path, typer.Option("--scores", help="Scores file (Parquet/CSV) written by `healthscore score`.")],
    out: Annotated[Path, typer.Option("--out", help="The report: one self-contained HTML file.")],
    history: Annotated[Optional[Path], typer.Option(
        "--history", help="Score history (DuckDB) for churn, retention, trends and movement since the previous run.")] = None,
    model: Annotated[Optional[str], typer.Option(
        "--model", help="models:/name@alias, models:/name/N or an exported folder; default: the model named in the scores.")] = None,
    csv: Annotated[Optional[Path], typer.Option("--csv", help="Also write the account table as CSV for a CRM import.")] = None,
    playbooks: Annotated[Optional[Path], typer.Option(
        "--playbooks", help="YAML of driver family -> next action; its entries replace the shipped ones.")] = None,
    forecast: Annotated[Optional[Path], typer.Option(
        "--forecast", help="Forecast written by `healthscore forecast` (its .accounts and .backtest files beside it): the forecast panel.")] = None,
) -> None:
    """Portfolio, KPIs, movement and every account with its reasons and next actions, in one HTML page."""
    from healthscore.io import check_output
    from healthscore.report import build_report, save_report

    check_output(out, (".html", ".htm"), [scores, history, playbooks, forecast])
    if csv is not None:
        check_output(csv, (".csv",), [scores, history, playbooks, out], "--csv")
    report = build_report(scores, history=history, model=model, playbooks=playbooks, forecast=forecast)
    save_report(report, out, csv)
    for note in report.notes:
        console.print(Text.assemble(("note:", "yellow"), f" {note}"))
    console.print(f"Report of {len(report.accounts):,} accounts: {out}" + (f"; CSV for the CRM: {csv}" if csv else ""))
