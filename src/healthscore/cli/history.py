"""`healthscore changes` and `healthscore explain`: the score history read by a CSM."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from healthscore.cli.console import handled, signed, tier_text
from healthscore.cli.console import stdout as console
from healthscore.defaults import HISTORY_DB
from healthscore.history import changes as history
from healthscore.io import TABLE_SUFFIXES, check_output, write_table

app = typer.Typer()
DbOpt = Annotated[Path, typer.Option("--db", help="Score history database (DuckDB), written by `healthscore score`.")]


@app.command("changes")
@handled
def changes_cmd(
    from_date: Annotated[str, typer.Option("--from", help="Earlier scoring date (YYYY-MM-DD).")],
    to_date: Annotated[str, typer.Option("--to", help="Later scoring date (YYYY-MM-DD).")],
    min_points: Annotated[float, typer.Option(min=0.0, help="Report score moves of at least this many points (tier changes always).")] = 10.0,
    db: DbOpt = HISTORY_DB,
    limit: Annotated[int, typer.Option(min=0, help="Rows shown, biggest drops first.")] = 50,
    out: Annotated[Optional[Path], typer.Option(help="Also write every metric's points, one row per account and metric (.csv or .parquet).")] = None,
) -> None:
    """Which accounts' health moved between two scoring dates, and which metrics moved them: the
    move split exactly over the metrics that changed (and the model, when it changed)."""
    if out is not None:
        check_output(out, TABLE_SUFFIXES, [db])
    found = history.changes(db, from_date, to_date, min_points)
    if out is not None:
        write_table(history.long_form(found, from_date, to_date), out)
        console.print(f"metric points of {len(found):,} accounts written to {out}")
    down, up = int((found["delta"] < 0).sum()), int((found["delta"] > 0).sum())
    tiers = int((found["tier_from"] != found["tier_to"]).sum())
    models = int(found["model_changed"].sum())
    console.print(f"{len(found):,} accounts changed from {from_date} to {to_date} (score moves of {min_points:g}+ points "
                  f"or a tier change): {down:,} moved down, {up:,} moved up, {tiers:,} changed tier"
                  + (f"; {models:,} scored by a different model version" if models else ""))
    if found.empty:
        return
    table = Table(title=f"Changes {from_date} -> {to_date}" + (f" (first {limit} of {len(found):,})" if len(found) > limit else ""))
    table.add_column("account", no_wrap=True)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("tier", max_width=22)
    table.add_column("why (metrics that moved most)", min_width=32, ratio=1)
    for row in found.head(limit).itertuples():
        tier = Text.assemble(tier_text(row.tier_from), " -> ", tier_text(row.tier_to))
        if row.model_changed:  # never let a model change pass for a change of behaviour
            tier.append(f"\nnew model: v{row.model_from} -> v{row.model_to}", style="bold magenta")
        table.add_row(
            Text(str(row.account_id)),
            Text.assemble(f"{row.score_from:.0f} -> {row.score_to:.0f} ", signed(row.delta)),
            tier,
            Text(row.explanation),
        )
    console.print(table)


@app.command("explain")
@handled
def explain_cmd(
    account_id: Annotated[str, typer.Argument(help="The account to explain.")],
    as_of: Annotated[Optional[str], typer.Option(help="Scoring date (YYYY-MM-DD); default: the account's latest.")] = None,
    db: DbOpt = HISTORY_DB,
) -> None:
    """Why an account has its score: every metric's points, and its score over time."""
    found = history.account_history(db, account_id, as_of)
    row = found["score"]
    console.print(Text.assemble(
        (f"{account_id}", "bold"), f" on {found['as_of']}: health score {row['health_score']:.0f} ",
        "(", tier_text(row["tier"], row["tier_color"]), ")",
        f", percentile {row['health_percentile']:.0f}, churn probability {row['churn_probability']:.1%}"))
    total = row["baseline_score"] + sum(c["points"] for c in found["contributions"])
    clipped = "" if abs(total - row["health_score"]) < 1e-6 else f", clipped to {row['health_score']:.0f} (scores stop at 0 and 100)"
    console.print(f"Model {row['model_name']} version {row['model_version']}, scored at {row['scored_at']}. "
                  f"Baseline {row['baseline_score']:.1f} + the points below = {total:.1f}{clipped}.")
    points = Table(title="What makes the score (points, most negative first)")
    points.add_column("metric")
    points.add_column("value")
    points.add_column("points", justify="right", no_wrap=True)
    for c in found["contributions"]:
        points.add_row(Text(c["label"]), Text(c["value_text"]), signed(c["points"], 1))
    console.print(points)
    past = Table(title="Score history")
    for name in ("as_of", "score", "tier", "model version"):
        past.add_column(name, justify="right" if name == "score" else "left", no_wrap=True)
    for h in found["history"]:
        past.add_row(str(h["as_of"]), f"{h['health_score']:.0f}", tier_text(h["tier"], h["tier_color"]), Text(str(h["model_version"])))
    console.print(past)
