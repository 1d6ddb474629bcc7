"""`healthscore generate`, `build-dataset` and `metrics`: the data a model learns from."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from healthscore.cli.console import console, fail, handled, stdout
from healthscore.cli.options import AsOfOpt, ConfigOpt, DateFloorOpt, IdOpt, LabelOpt, Mixed, MixedOpt, ReferenceDateOpt, TableOpt
from healthscore.defaults import DATE_FLOOR

app = typer.Typer()


@app.command()
@handled
def generate(
    out: Annotated[Path, typer.Option(help="Folder for the demo tables.")],
    accounts: Annotated[int, typer.Option(min=1, help="Accounts created over the whole period.")] = 2000,
    months: Annotated[int, typer.Option(min=1, max=240, help="Months of history.")] = 24,
    start: Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help="First day of the data.")] = "2024-01-01",
    seed: Annotated[int, typer.Option(help="Same seed, same tables, byte for byte.")] = 7,
) -> None:
    """Write a synthetic B2B SaaS customer base with known churn truth (and a ready config)."""
    from healthscore.cli.console import steps
    from healthscore.demo import generate_demo

    with steps() as progress:
        summary = generate_demo(out, accounts=accounts, months=months, start=start.date(), seed=seed, progress=progress)
    table = Table(title=f"Demo customer base in {out}")
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, rows in summary.row_counts.items():
        table.add_row(name, f"{rows:,}")
    console.print(table)
    console.print(f"Config: {out / 'healthscore.yaml'}")


@app.command("build-dataset")
@handled
def build_dataset(
    out: Annotated[Path, typer.Option(help="Dataset file to write (Parquet).")],
    config: ConfigOpt = None,
    table: TableOpt = None,
    id_column: IdOpt = None,
    label_column: LabelOpt = None,
    as_of_column: AsOfOpt = None,
    reference_date: ReferenceDateOpt = None,
    date_floor: DateFloorOpt = str(DATE_FLOOR),
    mixed_columns: MixedOpt = Mixed.error,
    all_rejections: Annotated[bool, typer.Option(help="List every rejected raw row, not the first 1,000 per reason.")] = False,
) -> None:
    """Build one point-in-time row per (account, as_of) with every metric and the churn label."""
    from healthscore.config import load_config
    from healthscore.dataset import coverage_path, rejections_path
    from healthscore.io import check_output
    from healthscore.pipeline import load_dataset

    cfg = load_config(config) if config else None
    inputs = [table, *([cfg.source_path(name) for name in cfg.sources] if cfg else [])]
    check_output(out, (".parquet",), inputs)
    check_output(rejections_path(out), (".csv",), inputs, "--out (its rejections)")
    check_output(coverage_path(out), (".csv",), inputs, "--out (its coverage)")
    with console.status("building the dataset") as status:
        if all_rejections and cfg is not None:
            from healthscore.build.raw import build_dataset as build

            dataset = build(cfg, progress=lambda msg: status.update(msg), sample=None)
        else:
            dataset = load_dataset(cfg, None, table, id_column, label_column, as_of_column, lambda msg: status.update(msg),
                                   reference_date and reference_date.date(), date_floor.date(), mixed_columns.value)
    dataset.write(out)
    _print_dataset_summary(dataset, out, rejections_path(out))


def _print_dataset_summary(dataset, out: Path, rejected: Path) -> None:
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
    if len(dataset.rejections):
        counts = dataset.rejections.groupby(["table", "column", "reason"]).size()
        console.print(f"[yellow]{len(dataset.rejections):,} input rows rejected[/] (details in {rejected}):")
        for (tbl, col, reason), n in counts.items():
            console.print(f"  {tbl}.{col}: {reason}: {n:,}")
    if dataset.timings:
        console.print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in dataset.timings.items()))


@app.command()
@handled
def metrics(
    config: ConfigOpt = None,
    markdown: Annotated[bool, typer.Option(help="Print a Markdown table (as in docs/METRICS.md).")] = False,
    sql: Annotated[Optional[str], typer.Option("--sql", metavar="CODE", help="Print the exact SQL of one metric.")] = None,
) -> None:
    """List the metric catalogue in force (the defaults, or a config's with its additions), or
    print one metric's SQL."""
    from healthscore.build.metric_sql import metric_listing
    from healthscore.catalogue import describe, load_default_catalogue, markdown_table
    from healthscore.config import load_config

    applies: dict[str, str] = {}
    if config:
        from healthscore.build.sources import load_sources

        loaded = load_config(config)
        catalogue = loaded.catalogue()
        sources = load_sources(loaded)  # which sources and columns exist decides what applies
        kept, notes = catalogue.available(sources.columns)
        sources.con.close()
        applies = {m.code: "yes" for m in kept} | {n.split()[1]: "no: " + n.split(": ", 1)[1] for n in notes}
    else:
        catalogue = load_default_catalogue()
    if sql is not None:
        codes = [m.code for m in catalogue]
        if sql not in codes:
            fail(f"--sql: no metric {sql!r} in the catalogue; metrics are {', '.join(codes)}")
        print(metric_listing(catalogue, sql), end="")
        return
    if markdown:
        print(markdown_table(catalogue), end="")
        return
    table = Table(title=f"{len(catalogue)} metrics" + (f", {list(applies.values()).count('yes')} apply to these tables" if applies else ""))
    for col in ("code", "label", "family", "good", "computed as") + (("applies",) if applies else ()):
        table.add_column(col)
    for m in catalogue:
        table.add_row(m.code, m.label, m.family, m.good_direction, describe(m), *([applies.get(m.code, "")] if applies else []))
    stdout.print(table)


@app.command()
@handled
def init(
    accounts: Annotated[Path, typer.Option(help="Your accounts table (CSV or Parquet).")],
    subscriptions: Annotated[Path, typer.Option(help="Your subscriptions / contracts table.")],
    events: Annotated[Path, typer.Option(help="Your product events (one row per event, or daily rollups).")],
    out: Annotated[Path, typer.Option(help="Config file to write.")] = Path("healthscore.yaml"),
    tickets: Annotated[Optional[Path], typer.Option(help="Support tickets (optional).")] = None,
    invoices: Annotated[Optional[Path], typer.Option(help="Invoices (optional).")] = None,
    surveys: Annotated[Optional[Path], typer.Option(help="NPS survey answers (optional).")] = None,
    users: Annotated[Optional[Path], typer.Option(help="Users (optional).")] = None,
    engagements: Annotated[Optional[Path], typer.Option(help="CSM outreach (optional).")] = None,
) -> None:
    """Inspect your tables and write a commented starter config: column mappings, every event type
    under a kind, the data end, a schedule and horizon your history can train on, and the metrics
    that apply. Prints what it could not decide."""
    from healthscore.build.starter import write_starter

    optional = {k: v for k, v in {"tickets": tickets, "invoices": invoices, "surveys": surveys, "users": users,
                                  "engagements": engagements}.items() if v is not None}
    for path in [accounts, subscriptions, events, *optional.values()]:
        if not path.exists():
            fail(f"{path}: file not found")
    starter = write_starter(out, accounts, subscriptions, events, optional)
    for fact in starter.facts:
        console.print(f"[dim]{fact}[/]")
    for item in starter.undecided:
        console.print(f"[yellow]not decided:[/] {item}")
    console.print(f"Config: {out}" + (" (fix what is not decided, then build)" if starter.undecided else
                                      f"; next: healthscore build-dataset --config {out} --out dataset.parquet"))
    if starter.undecided:
        raise typer.Exit(1)


@app.command("config-reference")
def config_reference() -> None:
    """Print the reference of every config key (docs/CONFIG.md), generated from the typed config."""
    from healthscore.config import reference_markdown

    print(reference_markdown(), end="")
