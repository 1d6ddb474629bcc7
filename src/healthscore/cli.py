"""The `healthscore` command line: a thin Typer layer over the Python API."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from healthscore.config import ConfigError, load_config
from healthscore.history_cli import TIER_COLORS, changes_cmd, explain_cmd
from healthscore.scoring.batch import DEFAULT_CHUNK, MAX_REJECTED_SHARE, TooManyRejected
from healthscore.scoring.history import DEFAULT_DB
from healthscore.scoring.job import DEFAULT_MODEL
from healthscore.report_cli import report_cmd
from healthscore.sources import DataError

app = typer.Typer(help="Calibrated, explainable customer health scores.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


@contextmanager
def _steps() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar per named step; yields the `progress(step, done, total)` callback."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield progress


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}")
    raise typer.Exit(code=2)


ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config pointing at the raw tables.")]
DatasetOpt = Annotated[Optional[Path], typer.Option("--dataset", help="A dataset built by build-dataset.")]
TableOpt = Annotated[Optional[Path], typer.Option("--table", help="Or: your own snapshot table (CSV/Parquet), no config needed.")]
IdOpt = Annotated[Optional[str], typer.Option(help="With --table: the account id column.")]
LabelOpt = Annotated[Optional[str], typer.Option(help="With --table: the churned yes/no column.")]
AsOfOpt = Annotated[Optional[str], typer.Option(help="With --table: the snapshot date column, if any.")]


def _load_dataset(config: Path | None, dataset: Path | None, table: Path | None, id_column, label_column, as_of_column):
    """The dataset from a built file, a config (built now) or a snapshot table; and the config."""
    from healthscore.dataset import build_dataset, read_dataset

    if sum(x is not None for x in (dataset, table)) > 1 or (config is None and dataset is None and table is None):
        _fail(ValueError("give --config (optionally with --dataset), or --dataset, or --table"))
    try:
        cfg = load_config(config) if config else None
        if dataset is not None:
            return read_dataset(dataset), cfg
        if table is not None:
            from healthscore.snapshot import build_snapshot_dataset

            if not id_column:
                _fail(ValueError("--table needs --id-column"))
            return build_snapshot_dataset(table, id_column, label_column, as_of_column), cfg
        with console.status("building the dataset") as status:
            return build_dataset(cfg, progress=lambda msg: status.update(msg)), cfg
    except (ConfigError, DataError, ValueError) as exc:
        _fail(exc)


def _print_frame(frame, title: str, floats: str = "{:.4f}") -> None:
    table = Table(title=title)
    table.add_column(frame.index.name or "")
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for key, row in frame.iterrows():
        table.add_row(str(key), *[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    console.print(table)


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

    with _steps() as progress:
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
    config: ConfigOpt = None,
    table: TableOpt = None,
    id_column: IdOpt = None,
    label_column: LabelOpt = None,
    as_of_column: AsOfOpt = None,
) -> None:
    """Build one point-in-time row per (account, as_of) with every metric and the churn label."""
    from healthscore.dataset import exclusions_path

    dataset, _ = _load_dataset(config, None, table, id_column, label_column, as_of_column)
    dataset.write(out)
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


@app.command()
def metrics(
    config: ConfigOpt = None,
    markdown: Annotated[bool, typer.Option(help="Print a Markdown table (as in docs/METRICS.md).")] = False,
) -> None:
    """List the metric catalogue in force: the defaults, or a config's with its additions."""
    from healthscore.catalogue import describe, load_default_catalogue, markdown_table

    try:
        catalogue = load_config(config).catalogue() if config else load_default_catalogue()
    except ConfigError as exc:
        _fail(exc)
    if markdown:
        print(markdown_table(catalogue), end="")
        return
    table = Table(title=f"{len(catalogue)} metrics")
    for col in ("code", "label", "family", "good", "computed as"):
        table.add_column(col)
    for m in catalogue:
        table.add_row(m.code, m.label, m.family, m.good_direction, describe(m))
    Console().print(table)


@app.command()
def train(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    table: TableOpt = None,
    id_column: IdOpt = None,
    label_column: LabelOpt = "churned",
    as_of_column: AsOfOpt = None,
    name: Annotated[Optional[str], typer.Option(help="Registered model name (default from config: customer-health).")] = None,
) -> None:
    """Learn the metric weights from churned-vs-retained history, compare with baselines, register."""
    import tempfile

    from healthscore.model.artefacts import write_training_artefacts
    from healthscore.model.settings import TrainingConfig
    from healthscore.model.training import LOGISTIC, MODEL, ORACLE, SCORECARD, ModelQualityError, train as fit
    from healthscore.registry import log_training

    data, cfg = _load_dataset(config, dataset, table, id_column, label_column, as_of_column)
    settings = cfg.model if cfg else TrainingConfig()
    truth = next((p for p in _truth_candidates(cfg, dataset) if p.exists()), None)
    with console.status("training"):
        try:
            result = fit(data, settings, truth)
        except ValueError as exc:
            _fail(exc)
    _print_frame(result.split_summary, "Time-ordered slices")
    shown = ["roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_lift"] + [
        c for c in result.comparison.columns if c.startswith(("churn_rate_", "accounts_"))]
    short = {MODEL: "model", LOGISTIC: "logistic", SCORECARD: "scorecard", ORACLE: "oracle"}
    _print_frame(result.comparison[shown].rename(index=short).T, "Test slice: model vs baselines")
    _print_frame(result.scorecard.set_index("label")[["family", "good_direction", "weight_pct"]].head(12),
                 "Learned weights (share of mean |SHAP|, %)", "{:.1f}")
    with tempfile.TemporaryDirectory() as tmp, console.status("logging to MLflow"):
        write_training_artefacts(result, Path(tmp), {"digest": result.dataset_digest, "origin": data.spec.origin})
        registered = log_training(result, data, Path(tmp), name)
    console.print(f"Registered [bold]{registered.name}[/] version {registered.version} as 'challenger' "
                  f"(run {registered.run_id}); exported to {registered.export_path}")
    try:
        result.check_quality()
    except ModelQualityError as exc:
        console.print(f"[bold red]model rejected:[/] {exc}")
        raise typer.Exit(code=1)


def _truth_candidates(cfg, dataset: Path | None) -> list[Path]:
    """Where demo data keeps the generator's true probabilities (never read for training)."""
    folders = ([cfg.base_dir] if cfg else []) + ([dataset.parent] if dataset else [])
    return [f / "ground_truth" / "churn_probability.parquet" for f in folders]


@app.command()
def promote(
    config: ConfigOpt = None,
    dataset: DatasetOpt = None,
    table: TableOpt = None,
    id_column: IdOpt = None,
    label_column: LabelOpt = "churned",
    as_of_column: AsOfOpt = None,
    name: Annotated[Optional[str], typer.Option(help="Registered model name (default from config: customer-health).")] = None,
    force: Annotated[bool, typer.Option(help="Promote even if the challenger is worse.")] = False,
) -> None:
    """Move the 'champion' alias to the challenger if it is not worse on the latest labelled data."""
    from healthscore.model.settings import TrainingConfig
    from healthscore.registry import promote as run_promotion

    data, cfg = _load_dataset(config, dataset, table, id_column, label_column, as_of_column)
    try:
        outcome = run_promotion(data, name or (cfg.model if cfg else TrainingConfig()).registered_name, force)
    except ValueError as exc:
        _fail(exc)
    _print_frame(outcome.comparison[["roc_auc", "pr_auc", "brier", "ece", "top_decile_lift"]].T, "Latest labelled slice")
    verdict = "[green]promoted[/]" if outcome.promoted else "[yellow]not promoted[/]"
    console.print(f"{verdict}: version {outcome.challenger_version} ({outcome.reason}); "
                  f"champion is now version {outcome.challenger_version if outcome.promoted else outcome.champion_version}")


@app.command()
def score(
    out: Annotated[Path, typer.Option(help="Scores file to write (.parquet or .csv).")],
    config: ConfigOpt = None,
    as_of: Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help=(
        "Observation date (with --config; with --table it sets every row's as_of: default the table's own, or today)."))] = None,
    model: Annotated[str, typer.Option(help="models:/name@alias, models:/name/version, or a folder under models/.")] = DEFAULT_MODEL,
    table: TableOpt = None,
    id_column: IdOpt = None,
    as_of_column: AsOfOpt = None,
    history: Annotated[Path, typer.Option(help="Score history database (DuckDB).")] = DEFAULT_DB,
    chunk_size: Annotated[int, typer.Option(help="Accounts scored per chunk: memory follows the chunk.")] = DEFAULT_CHUNK,
    max_rejected: Annotated[float, typer.Option(help="Fail when more than this share of rows cannot be scored.")] = MAX_REJECTED_SHARE,
) -> None:
    """Score every account: calibrated health score, tier, reason codes; recorded in the history."""
    from healthscore.scoring.drift import ACT, WATCH
    from healthscore.scoring.job import score_accounts

    if (config is None) == (table is None) or (config is not None and as_of is None):
        _fail(ValueError("give --config with --as-of, or --table (a dataset file or your snapshot table, with --id-column)"))
    try:
        cfg = load_config(config) if config else None
        with _steps() as progress:
            run = score_accounts(out, model, cfg, as_of.date() if as_of else None, table, id_column, as_of_column, history,
                                 chunk_size, max_rejected, progress)
    except TooManyRejected as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1)
    except (ConfigError, DataError, ValueError) as exc:
        _fail(exc)
    _print_score_summary(run, out, history, WATCH, ACT)


def _print_score_summary(run, out: Path, history: Path, watch: float, act: float) -> None:
    from healthscore.dataset import exclusions_path

    meta = run.metadata
    model = meta["model"]
    console.print(f"Scored {meta['scored_rows']:,} of {meta['input_rows']:,} accounts at {meta['as_of'] or 'snapshot'} with "
                  f"{model['name']} v{model['version']} in {meta['seconds']:.1f}s -> {out} (history: {history})")
    if run.rejected_path:
        console.print(f"[yellow]{meta['rejected_rows']:,} rows rejected[/] -> {run.rejected_path}")
    if meta["excluded_source_rows"]:
        console.print(f"[yellow]{meta['excluded_source_rows']:,} raw-table rows set aside by the checks[/] -> "
                      f"{exclusions_path(out)}")
    tiers = Table(title="Accounts per tier")
    for col in ("tier", "accounts", "share"):
        tiers.add_column(col, justify="right" if col != "tier" else "left")
    for tier, n in meta["tiers"].items():
        tiers.add_row(f"[{TIER_COLORS[tier]}]{tier}[/]", f"{n:,}", f"{n / max(meta['scored_rows'], 1):.0%}")
    console.print(tiers)
    risky = Table(title="Five riskiest accounts")
    for col in ("account", "score", "tier", "top reason"):
        risky.add_column(col)
    for row in meta["riskiest"]:
        risky.add_row(row["account_id"], f"{row['health_score']:.0f}", row["tier"], str(row["reason_1_text"]))
    console.print(risky)
    drift = meta.get("drift") or {}
    console.print(f"Drift: score PSI {drift.get('score_psi', float('nan')):.3f}; "
                  f"metrics to act on (PSI > {act}): {drift.get('act') or 'none'}; to watch (> {watch}): {drift.get('watch') or 'none'}")


app.command("changes")(changes_cmd)
app.command("explain")(explain_cmd)
app.command("report")(report_cmd)

if __name__ == "__main__":
    app()
