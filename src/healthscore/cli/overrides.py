"""`healthscore override` and `healthscore overrides`: a CSM's disagreement with the model, on the
record beside the scores, and who turned out right."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table
from rich.text import Text

from healthscore.cli.console import console, handled, tier_text
from healthscore.cli.console import stdout as out
from healthscore.defaults import HISTORY_DB

app = typer.Typer()
DbOpt = Annotated[Path, typer.Option("--db", help="Score history database (DuckDB), written by `healthscore score`.")]


@app.command("override")
@handled
def override_cmd(
    account_id: Annotated[str, typer.Argument(help="The account the CSM disagrees about.")],
    tier: Annotated[str, typer.Option("--tier", help="The CSM's tier: healthy, at_risk or unhealthy.")],
    reason: Annotated[str, typer.Option("--reason", help="Reason code (see `healthscore overrides --reasons`).")],
    by: Annotated[str, typer.Option("--by", help="Who disagrees (the CSM's name).")],
    note: Annotated[Optional[str], typer.Option("--note", help="Free text: what the CSM knows.")] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Last day the override holds (YYYY-MM-DD); default in 90 days.")] = None,
    db: DbOpt = HISTORY_DB,
) -> None:
    """Record that a CSM puts an account in another tier than the model: shown beside the model's tier, never instead of it."""
    from healthscore.history.overrides import record_override

    row = record_override(db, account_id, tier, reason, by, note, until)
    console.print(Text.assemble(f"Override {row['override_id']} recorded: {account_id}: model ", tier_text(row["model_tier"]),
                                f" (scored {row['as_of']}), {row['created_by']} says ", tier_text(tier),
                                f" ({reason}) until {row['until']}"))


@app.command("overrides")
@handled
def overrides_cmd(
    db: DbOpt = HISTORY_DB,
    evaluate: Annotated[bool, typer.Option("--evaluate", help="Who was right, model or CSM, where the outcome is known (needs --config).")] = False,
    config: Annotated[Optional[Path], typer.Option("--config", help="With --evaluate: the YAML config whose subscriptions show churn.")] = None,
    reasons: Annotated[bool, typer.Option("--reasons", help="List the reason codes instead.")] = False,
) -> None:
    """Every override, newest first (expired ones marked); with --evaluate, churn by model tier against churn by CSM tier."""
    from healthscore.errors import UserError
    from healthscore.history import overrides

    if reasons:
        for code, meaning in overrides.reasons().items():
            out.print(f"{code}: {meaning}")
        return
    if evaluate:
        if config is None:
            raise UserError("--evaluate needs --config: the outcomes come from the subscriptions")
        from healthscore.config import load_config

        found, summary = overrides.evaluate_overrides(db, load_config(config))
    else:
        found, summary = overrides.list_overrides(db), None
    table = Table(title=f"Overrides in {db}" + ("" if summary is None else ": who was right"))
    for col in ("id", "account", "scored", "model", "CSM", "reason", "by", "until", *(("churned", "right") if evaluate else ())):
        table.add_column(col)
    for r in found.itertuples():
        until = f"{r.until}" + (" (expired)" if r.expired else "")
        extra = () if not evaluate else ("pending" if r.churned is None or r.churned != r.churned else ("yes" if r.churned else "no"),
                                         "" if r.right is None or r.right != r.right else str(r.right))
        table.add_row(str(r.override_id), r.account_id, str(r.as_of), tier_text(r.model_tier), tier_text(r.csm_tier), r.reason,
                      r.created_by, until, *extra)
    out.print(table)
    if summary is not None:
        rates = Table(title="Churn rate on the overridden accounts with a known outcome: by the model's tier and by the CSM's")
        for col in ("tier", "model: accounts", "churned", "rate", "CSM: accounts", "churned", "rate"):
            rates.add_column(col, justify="left" if col == "tier" else "right")
        by = {side: summary[summary["by"] == side].set_index("tier") for side in ("model", "csm")}
        for tier in by["model"].index:
            cells = []
            for side in ("model", "csm"):
                s = by[side].loc[tier]
                cells += [f"{s.accounts:,}", f"{s.churned:,}", "-" if not s.accounts else f"{s.churn_rate:.0%}"]
            rates.add_row(tier_text(tier), *cells)
        out.print(rates)
        right = found["right"].value_counts()
        console.print(f"{int(found['right'].notna().sum())} of {len(found)} overrides judged: the model was right on "
                      f"{int(right.get('model', 0))}, the CSM on {int(right.get('csm', 0))}; {int(found['right'].isna().sum())} pending")
    elif found.empty:
        console.print(f"no overrides in {db}")
