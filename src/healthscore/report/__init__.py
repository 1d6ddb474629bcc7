"""The CSM-facing report: one self-contained HTML page (portfolio, KPIs, movement, the account
table and every account's detail) and a CSV of the account table for CRM imports.

`build` computes the data, `html` renders it with `template.html`, `report.css` and
`report.js`, `export` writes the CSV; `playbooks.yaml` maps driver families to next actions.
"""

from __future__ import annotations

from pathlib import Path

from healthscore.io import atomic_path
from healthscore.report.build import Report, build_report
from healthscore.report.export import write_csv
from healthscore.report.html import render

__all__ = ["Report", "build_report", "save_report", "write_report"]


def write_report(scores_path: str | Path, out: str | Path, history: str | Path | None = None, model: str | None = None,
                 csv: str | Path | None = None, playbooks: str | Path | None = None, forecast: str | Path | None = None) -> Path:
    """Build the report of one scores file into `out` (and the account CSV into `csv`); returns `out`.
    `model` defaults to the model named in the scores; `history` adds KPIs over time, movement and
    the CSMs' overrides; `forecast` (written by `healthscore forecast`) the forecast panel."""
    return save_report(build_report(scores_path, history=history, model=model, playbooks=playbooks, forecast=forecast), out, csv)


def save_report(report: Report, out: str | Path, csv: str | Path | None = None) -> Path:
    """Write a built report: callers that show its notes (the CLI) build and save in two steps."""
    out = Path(out)
    with atomic_path(out) as tmp:
        tmp.write_text(render(report.payload), encoding="utf-8")
    if csv is not None:
        write_csv(report.accounts, csv)
    return out
