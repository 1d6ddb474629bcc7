"""`healthscore score`: the batch job that scores the whole base."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from healthscore.cli.console import TIER_COLORS, console, fail, handled, steps
from healthscore.cli.options import AsOfOpt, ConfigOpt, Engine, EngineOpt, IdOpt, ReferenceDateOpt, TableOpt
from healthscore.defaults import CHUNK_SIZE, HISTORY_DB, MAX_REJECTED_SHARE, MODEL_REF

app = typer.Typer()


@app.command()
@handled
def score(
    out: Annotated[Path, typer.Option(help="Scores file to write (.parquet or .csv).")],
    config: ConfigOpt = None,
    as_of: Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help=(
        "Observation date (with --config; with --table it sets every row's as_of: default the table's own, or today)."))] = None,
    model: Annotated[str, typer.Option(help="models:/name@alias, models:/name/version, or a folder under models/.")] = MODEL_REF,
    table: TableOpt = None,
    id_column: IdOpt = None,
    as_of_column: AsOfOpt = None,
    history: Annotated[Path, typer.Option(help="Score history database (DuckDB).")] = HISTORY_DB,
    chunk_size: Annotated[int, typer.Option(min=1, help="Accounts scored per chunk: memory follows the chunk.")] = CHUNK_SIZE,
    max_rejected: Annotated[float, typer.Option(min=0.0, max=1.0, help="Fail when more than this share of rows cannot be scored.")] = MAX_REJECTED_SHARE,
    engine: EngineOpt = Engine.local,
    reference_date: ReferenceDateOpt = None,
) -> None:
    """Score every account: calibrated health score, tier, reason codes; recorded in the history."""
    from healthscore.config import load_config
    from healthscore.errors import TooManyRejected
    from healthscore.pipeline import score_accounts

    if (config is None) == (table is None) or (config is not None and as_of is None):
        fail("give --config with --as-of, or --table (a dataset file or your snapshot table, with --id-column)")
    cfg = load_config(config) if config else None
    try:
        with steps() as progress:
            run = score_accounts(out, model, cfg, as_of.date() if as_of else None, table, id_column, as_of_column, history,
                                 chunk_size, max_rejected, progress, engine.value, reference_date and reference_date.date())
    except TooManyRejected as exc:
        fail(exc, code=1)
    _print_score_summary(run, out, history)


def _print_score_summary(run, out: Path, history: Path) -> None:
    from healthscore.scoring.drift import ACT, WATCH

    meta = run.metadata
    model = meta["model"]
    console.print(f"Scored {meta['scored_rows']:,} of {meta['input_rows']:,} accounts at {meta['as_of'] or 'snapshot'} with "
                  f"{model['name']} v{model['version']} in {meta['seconds']:.1f}s -> {out} (history: {history})")
    if meta.get("reference_date"):
        console.print(f"reference date {meta['reference_date']}: the table's dates count days back from it")
    if run.rejected_path:
        console.print(f"[yellow]{meta['rejected_rows']:,} rows rejected"
                      + (f" and {meta['rejected_source_rows']:,} raw-table rows set aside by the checks (a sample of them in the file)"
                         if meta["rejected_source_rows"] else "")
                      + f"[/] -> {run.rejected_path}")
    for code, values in meta["unseen_categories"].items():
        shown = ", ".join(f"{v!r} ({n:,})" for v, n in list(values.items())[:5])
        console.print(f"[yellow]{code}: values not seen in training, read as missing:[/] {shown}")
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
                  f"metrics to act on (PSI > {ACT}): {drift.get('act') or 'none'}; to watch (> {WATCH}): {drift.get('watch') or 'none'}")
