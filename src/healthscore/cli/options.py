"""Options that several commands share, declared once."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML config pointing at the raw tables.")]
DatasetOpt = Annotated[Optional[Path], typer.Option("--dataset", help="A dataset built by build-dataset.")]
TableOpt = Annotated[Optional[Path], typer.Option("--table", help="Or: your own snapshot table (CSV/Parquet), no config needed.")]
IdOpt = Annotated[Optional[str], typer.Option(help="With --table: the account id column.")]
LabelOpt = Annotated[Optional[str], typer.Option(help="With --table: the churned yes/no column.")]
AsOfOpt = Annotated[Optional[str], typer.Option(help="With --table: the snapshot date column, if any.")]
ReferenceDateOpt = Annotated[Optional[dt.datetime], typer.Option(formats=["%Y-%m-%d"], help=(
    "With --table and no as_of column: the date its dates count back from (default: derived from the table; "
    "rows dated after it are rejected)."))]
DateFloorOpt = Annotated[dt.datetime, typer.Option(formats=["%Y-%m-%d"], help=(
    "With --table: rows with a date before this are rejected (a placeholder such as 1900-01-01, not history)."))]

class Mixed(str, Enum):
    error = "error"
    text = "text"


MixedOpt = Annotated[Mixed, typer.Option(help=(
    "With --table: a column mostly of numbers or dates, with too many values that are not, is an error (error) "
    "or read as text (text)."))]
NameOpt = Annotated[Optional[str], typer.Option(help="Registered model name (default from config: customer-health).")]


class Engine(str, Enum):
    local = "local"
    spark = "spark"


EngineOpt = Annotated[Engine, typer.Option(help=(
    "local: this machine (DuckDB); spark: the active Spark session (spark-submit, a notebook) or a local one."))]
