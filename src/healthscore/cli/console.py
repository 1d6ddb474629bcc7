"""The CLI's one output module: the consoles, progress bars, tables, tier colours, and how a
command fails.

Messages, progress and errors go to stderr; what a user may pipe on (tables of data) to stdout.
An error the user can fix (`UserError`) is one line and exit code 2; a run that worked but must
not pass (too many rejected rows, a model the quality gate refused) exits 1; any other error is
one line and exit code 2 as well, with the traceback behind `healthscore --debug`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NoReturn

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from healthscore.errors import UserError
from healthscore.settings import TierPolicy

console = Console(stderr=True)
stdout = Console()
TIER_COLORS = TierPolicy().colors  # tier names are fixed; colours are the tier policy's defaults
DEBUG = {"on": False}  # set by `healthscore --debug`


def fail(message: object, code: int = 2) -> NoReturn:
    console.print(Text.assemble(("error:", "bold red"), f" {message}"))
    raise typer.Exit(code=code)


def handled(command: Callable) -> Callable:
    """Run a command so that any error ends as one line and an exit code, never a traceback
    (unless --debug)."""

    @functools.wraps(command)
    def run(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except UserError as exc:
            if DEBUG["on"]:
                raise
            fail(exc)
        except Exception as exc:
            if DEBUG["on"]:
                raise
            first = (str(exc) or type(exc).__name__).splitlines()[0]
            fail(f"{type(exc).__name__}: {first} (healthscore --debug ... shows the traceback)")

    return run


@contextmanager
def steps() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar per named step; yields the `progress(step, done, total)` callback."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
        tasks: dict[str, int] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        yield progress


def print_frame(frame: pd.DataFrame, title: str, floats: str = "{:.4f}") -> None:
    table = Table(title=title)
    table.add_column(frame.index.name or "")
    for col in frame.columns:
        table.add_column(str(col), justify="right")
    for key, row in frame.iterrows():
        table.add_row(str(key), *[floats.format(v) if isinstance(v, float) else str(v) for v in row])
    console.print(table)


def tier_text(tier: str, color: str | None = None) -> Text:
    """The tier's name always, its colour as a help: a colour alone is lost on many screens."""
    return Text(str(tier).replace("_", " "), style=color or TIER_COLORS.get(tier, ""))


def signed(points: float, digits: int = 0) -> Text:
    return Text(f"{points:+.{digits}f}", style="red" if points < 0 else "green" if points > 0 else "")
