"""The `healthscore` command line: a thin Typer layer over the public Python API
(`healthscore.pipeline`). One module per group of commands; `console` holds all output."""

from __future__ import annotations

from typing import Annotated

import typer

from healthscore.cli import data, forecast, history, models, overrides, report, scoring
from healthscore.cli.console import DEBUG

app = typer.Typer(help="Calibrated, explainable customer health scores.", no_args_is_help=True, add_completion=False)


@app.callback()
def main(debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False) -> None:
    DEBUG["on"] = debug


for group in (data, models, scoring, history, report, forecast, overrides):
    app.registered_commands += group.app.registered_commands

if __name__ == "__main__":
    app()
