"""The one YAML config, validated into typed objects.

Errors name the key path and what is wrong (``sources.events.path: file not found``), because
a data scientist pointing the tool at their own exports will get some of it wrong first time.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from healthscore.catalogue import Metric, MetricCatalogue, load_default_catalogue
from healthscore.errors import ConfigError
from healthscore.schema import SOURCE_SCHEMAS
from healthscore.settings import TrainingConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where one raw table lives and how its columns are named in the user's export."""

    path: Path
    table: str | None = None  # required when path is a DuckDB database
    format: Literal["parquet", "csv", "duckdb"] | None = None  # default: from the extension
    columns: dict[str, str] = Field(default_factory=dict)  # canonical name -> user's column
    # Events only: user's event type names grouped into the kinds the catalogue filters on.
    event_kinds: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _format_known(self) -> SourceConfig:
        if self.resolved_format == "duckdb" and not self.table:
            raise ValueError("a DuckDB database needs `table`")
        return self

    @property
    def resolved_format(self) -> str:
        if self.format:
            return self.format
        suffix = self.path.suffix.lower()
        if suffix in (".duckdb", ".db"):
            return "duckdb"
        if suffix in (".csv", ".tsv", ".txt") or self.path.name.lower().endswith(".csv.gz"):
            return "csv"
        return "parquet"


class ChurnConfig(_Strict):
    """Churn = the account's latest contract row has ended: it was not renewed."""

    definition: Literal["subscription_ended"] = "subscription_ended"
    horizon_days: int = Field(90, gt=0, le=730)


class ScheduleConfig(_Strict):
    """The observation dates (as_of) at which every active account gets a row."""

    start: dt.date
    end: dt.date
    every: str = "month"  # month | week | <N>d

    @field_validator("every")
    @classmethod
    def _every_known(cls, value: str) -> str:
        if value in ("month", "week") or (value.endswith("d") and value[:-1].isdigit() and int(value[:-1]) > 0):
            return value
        raise ValueError("must be 'month', 'week' or a number of days like '14d'")

    @model_validator(mode="after")
    def _ordered(self) -> ScheduleConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def dates(self) -> list[dt.date]:
        if self.every == "month":
            out, (y, m) = [], (self.start.year, self.start.month)
            first = self.start if self.start.day == 1 else dt.date(y, m, 1)
            day = first
            while day <= self.end:
                if day >= self.start:
                    out.append(day)
                y, m = (day.year + 1, 1) if day.month == 12 else (day.year, day.month + 1)
                day = dt.date(y, m, 1)
            return out
        step = dt.timedelta(days=7 if self.every == "week" else int(self.every[:-1]))
        out, day = [], self.start
        while day <= self.end:
            out.append(day)
            day += step
        return out


class MetricsConfig(_Strict):
    include_defaults: bool = True
    add: list[Metric] = Field(default_factory=list)
    drop: list[str] = Field(default_factory=list)


class Config(_Strict):
    sources: dict[str, SourceConfig]
    churn: ChurnConfig = ChurnConfig()
    schedule: ScheduleConfig
    data_end: dt.date | None = None  # first day without data; default: day after the latest event
    metrics: MetricsConfig = MetricsConfig()
    model: TrainingConfig = TrainingConfig()
    exclude_bad_rows: bool = True  # False: any bad row is an error instead of an exclusion
    base_dir: Path = Path(".")  # where relative paths resolve: the config file's folder

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: dict[str, SourceConfig]) -> dict[str, SourceConfig]:
        unknown = sorted(set(sources) - set(SOURCE_SCHEMAS))
        if unknown:
            raise ValueError(f"unknown source(s) {unknown}; known: {sorted(SOURCE_SCHEMAS)}")
        missing = [name for name, schema in SOURCE_SCHEMAS.items() if schema.required and name not in sources]
        if missing:
            raise ValueError(f"required source(s) missing: {missing}")
        return sources

    def source_path(self, name: str) -> Path:
        path = self.sources[name].path
        return path if path.is_absolute() else self.base_dir / path

    def catalogue(self) -> MetricCatalogue:
        """The metric catalogue in force: defaults (unless disabled) minus `drop` plus `add`."""
        base = load_default_catalogue().metrics if self.metrics.include_defaults else ()
        unknown_drops = sorted(set(self.metrics.drop) - {m.code for m in base})
        if unknown_drops:
            raise ConfigError(f"metrics.drop: unknown metric code(s) {unknown_drops}")
        kept = [m for m in base if m.code not in set(self.metrics.drop)]
        try:
            return MetricCatalogue(metrics=tuple(kept) + tuple(self.metrics.add))
        except ValidationError as exc:
            raise ConfigError(f"metrics: {_first_error(exc)}") from None


def _first_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"]) or "(top level)"
        lines.append(f"{where}: {err['msg']}")
    return "; ".join(lines)


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config; relative paths in it resolve against its folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    raw.setdefault("base_dir", str(path.resolve().parent))
    try:
        config = Config.model_validate(raw)
        config.catalogue()
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_first_error(exc)}") from None
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return config
