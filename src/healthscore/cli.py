"""The `healthscore` command line: a thin Typer layer over the Python API."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from healthscore.config import ConfigError, load_config
from healthscore.sources import DataError

app = typer.Typer(help="Calibrated, explainable customer health scores.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder for the demo tables.")],
    accounts: Annotated[int, typer.Option(help="Accounts created over the whole period.")] = 2000,
    months: Annotated[int, typer.Option(help="Months of history.")] = 24,
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day of the data.")] = "2024-01-01",
    seed: Annotated[int, typer.Option(help="Same seed, same tables, byte for byte.")] = 7,
) -> None:
    """Write a synthetic B2B SaaS customer base with known churn truth (and a ready config)."""
    from healthscore.demo import generate_demo

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        summary = generate_demo(out, accounts=accounts, months=months, start=start.date(), seed=seed, progress=progress)
    table = Table(title=f"Demo customer base in {out}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.row_counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"Config: {out / 'healthscore.yaml'}")


@app.command("build-dataset")
def build_dataset_cmd(
    out: Annotated[Path, typer.Option(help="Dataset file to write (Parquet).")],
    config: Annotated[Optional[Path], typer.Option(help="YAML config pointing at the raw tables.")] = None,
    table: Annotated[Optional[Path], typer.Option(help="Or: your own snapshot table (CSV/Parquet), no config needed.")] = None,
    id_column: Annotated[Optional[str], typer.Option(help="With --table: the account id column.")] = None,
    label_column: Annotated[Optional[str], typer.Option(help="With --table: the churned yes/no column.")] = None,
    as_of_column: Annotated[Optional[str], typer.Option(help="With --table: the snapshot date column, if any.")] = None,
) -> None:
    """Build one point-in-time row per (account, as_of) with every metric and the churn label."""
    from healthscore.dataset import build_dataset, exclusions_path

    if (config is None) == (table is None):
        _fail(ValueError("give either --config or --table"))
    try:
        if config is not None:
            with console.status("building the dataset") as status:
                dataset = build_dataset(load_config(config), progress=lambda msg: status.update(msg))
        else:
            from healthscore.snapshot import build_snapshot_dataset

            if not id_column:
                _fail(ValueError("--table needs --id-column"))
            dataset = build_snapshot_dataset(table, id_column, label_column, as_of_column)
        dataset.write(out)
    except (ConfigError, DataError) as exc:
        _fail(exc)
    _print_dataset_summary(dataset, out, exclusions_path(out))


def _print_dataset_summary(dataset, out: Path, excluded: Path) -> None:
    frame, spec = dataset.frame, dataset.spec
    for note in spec.notes:
        console.print(f"[dim]note: {note}[/]")
    summary = Table(title=f"Dataset {out}")
    summary.add_column("as_of" if spec.as_of_column else "rows")
    summary.add_column("accounts", justify="right")
    summary.add_column("labelled", justify="right")
    summary.add_column("churn rate", justify="right")
    groups = frame.groupby(spec.as_of_column) if spec.as_of_column else [("all", frame)]
    for key, rows in groups:
        label = rows[spec.label_column] if spec.label_column else None
        labelled = int(label.notna().sum()) if label is not None else 0
        rate = f"{label.dropna().astype(float).mean():.1%}" if labelled else "-"
        summary.add_row(str(key), f"{len(rows):,}", f"{labelled:,}", rate)
    console.print(summary)
    console.print(f"{len(frame):,} rows x {len(spec.features)} features written to {out}")
    if len(dataset.exclusions):
        counts = dataset.exclusions.groupby(["table", "column", "reason"]).size()
        console.print(f"[yellow]{len(dataset.exclusions):,} input rows excluded[/] (details in {excluded}):")
        for (tbl, col, reason), n in counts.items():
            console.print(f"  {tbl}.{col}: {reason}: {n:,}")
    if dataset.timings:
        console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in dataset.timings.items()))


if __name__ == "__main__":
    app()
