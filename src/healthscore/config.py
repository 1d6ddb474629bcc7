"""The one YAML config, validated into typed objects.

Errors name the key path and what is wrong (``sources.events.path: file not found``), because
a data scientist pointing the tool at their own exports will get some of it wrong first time.
"""

from __future__ import annotations

import calendar
import datetime as dt
import difflib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from healthscore.catalogue import Metric, MetricCatalogue, load_default_catalogue
from healthscore.defaults import DATE_FLOOR
from healthscore.errors import ConfigError
from healthscore.schema import SOURCE_SCHEMAS, Column, SourceSchema
from healthscore.settings import TrainingConfig

ExtraType = Literal["string", "category", "number", "integer", "date", "bool"]
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Where one raw table lives and how its columns are named in the user's export."""

    path: Path  # the file (CSV, Parquet, a glob of Parquet files, or a DuckDB database), relative to the config
    table: str | None = None  # required when path is a DuckDB database
    format: Literal["parquet", "csv", "duckdb"] | None = None  # default: from the extension
    columns: dict[str, str] = Field(default_factory=dict)  # canonical name -> user's column
    # Events only: user's event type names grouped into the kinds the catalogue filters on.
    event_kinds: dict[str, list[str]] = Field(default_factory=dict)
    # Columns beyond the canonical ones, by the name metrics use -> type; map a differently named
    # column of the export with `columns` (name -> user's column) as for canonical ones.
    extra_columns: dict[str, ExtraType] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _format_known(self) -> SourceConfig:
        if self.resolved_format == "duckdb" and not self.table:
            raise ValueError("a DuckDB database needs `table`")
        bad = [n for n in self.extra_columns if not _NAME.match(n)]
        if bad:
            raise ValueError(f"extra_columns: {bad} must be lower_snake_case names (map the export's column with `columns`)")
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
    """Churn = the account's latest contract row has ended: it was not renewed. The horizon is
    given one way: in months or schedule steps (label windows that tile the schedule, so every
    churn falls in the same number of windows) or in days; default 3 months on a monthly
    schedule, else 90 days."""

    definition: Literal["subscription_ended"] = "subscription_ended"  # churn = the latest contract row has an end date
    horizon_months: int | None = Field(None, gt=0, le=24)  # churn within k calendar months of as_of
    horizon_steps: int | None = Field(None, gt=0, le=104)  # k observation steps of the schedule
    horizon_days: int | None = Field(None, gt=0, le=730)  # churn within k days (does not tile a monthly schedule)
    check_label_rates: bool = True  # an as_of whose churn rate is far outside the others is an error
    # A subscriptions row that cannot be read (bad date or number, missing id, duplicate) may be the one that
    # decides an account's churn: stop (an error naming the rows and accounts), or drop_account: leave those
    # accounts out whole (every row of theirs, in every table, rejected as account_dropped).
    unreadable_subscriptions: Literal["stop", "drop_account"] = "stop"

    @model_validator(mode="after")
    def _one_horizon(self) -> ChurnConfig:
        given = [k for k in ("horizon_months", "horizon_steps", "horizon_days") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of horizon_months, horizon_steps, horizon_days, not {given}")
        return self


class ScheduleConfig(_Strict):
    """The observation dates (as_of) at which every active account gets a row."""

    start: dt.date  # the first as_of (leave the longest metric window of history before it)
    end: dt.date  # the last as_of; dates after the data end are left out with a note
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

    def step(self, day: dt.date, steps: int = 1) -> dt.date:
        """The date `steps` observation steps after `day` (whole calendar months for a monthly schedule)."""
        if self.every == "month":
            return add_months(day, steps)
        return day + dt.timedelta(days=steps * (7 if self.every == "week" else int(self.every[:-1])))

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


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by whole calendar months, clamped to the month's last day (Jan 31 + 1 = Feb 29)."""
    y, m = divmod(day.month - 1 + months, 12)
    year, month = day.year + y, m + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class MetricsConfig(_Strict):
    """The metrics the dataset gets: the built-in catalogue, minus `drop`, plus `add`, relabelled."""

    include_defaults: bool = True  # start from the built-in catalogue (docs/METRICS.md)
    add: list[Metric] = Field(default_factory=list)  # your own metrics (keys below)
    drop: list[str] = Field(default_factory=list)  # codes of built-in metrics to leave out
    labels: dict[str, str] = Field(default_factory=dict)  # code -> your wording ("Posts (30 days)")
    # A metric that measures nothing (its filter matches no row, or it is constant): an error, or dropped with a note.
    unusable: Literal["error", "drop"] = "error"


class Config(_Strict):
    sources: dict[str, SourceConfig]  # accounts, subscriptions, events (required); users, tickets, invoices, surveys, engagements
    churn: ChurnConfig = ChurnConfig()  # what churn is and the label horizon
    schedule: ScheduleConfig  # the observation dates
    # First day without data. Default: the day after the latest event; labels also stop where the
    # subscriptions stop (see healthscore.build.labels).
    data_end: dt.date | None = None
    # Dates before this are rejected (before_date_floor) in every table, at training and scoring: 1900-01-01
    # or 1970-01-01 is a placeholder, not history.
    date_floor: dt.date = DATE_FLOOR
    metrics: MetricsConfig = MetricsConfig()  # the metric catalogue in force
    model: TrainingConfig = TrainingConfig()  # training: LightGBM, the time split, tiers
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

    @model_validator(mode="after")
    def _extras_are_new(self) -> Config:
        for name, source in self.sources.items():
            clash = sorted(set(source.extra_columns) & {c.name for c in SOURCE_SCHEMAS[name].columns})
            if clash:
                raise ValueError(f"sources.{name}.extra_columns: {clash} are canonical columns already")
        return self

    def schema(self, name: str) -> SourceSchema:
        """The canonical schema of a source plus the user's extra columns."""
        base, extra = SOURCE_SCHEMAS[name], self.sources[name].extra_columns if name in self.sources else {}
        return replace(base, columns=base.columns + tuple(Column(n, t) for n, t in extra.items()))

    @property
    def horizon(self) -> Horizon:
        churn, schedule = self.churn, self.schedule
        if churn.horizon_days is not None:
            return Horizon(days=churn.horizon_days)
        if churn.horizon_steps is not None:
            return Horizon(steps=churn.horizon_steps, schedule=schedule)
        if churn.horizon_months is not None or schedule.every == "month":
            return Horizon(steps=churn.horizon_months or 3, schedule=schedule.model_copy(update={"every": "month"}))
        return Horizon(days=90)

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
        families = {m.family for m in load_default_catalogue().metrics} | {"other"}  # each has a playbook
        for m in self.metrics.add:
            if m.family not in families:
                close = difflib.get_close_matches(m.family, sorted(families), 1)
                raise ConfigError(f"metrics.add: metric {m.code!r}: unknown family {m.family!r}"
                                  + (f" (did you mean {close[0]!r}?)" if close else "") + f"; families: {', '.join(sorted(families))}")
        try:
            catalogue = MetricCatalogue(metrics=tuple(kept) + tuple(self.metrics.add))
            unknown = sorted(set(self.metrics.labels) - {m.code for m in catalogue})
            if unknown:
                raise ConfigError(f"metrics.labels: unknown metric code(s) {unknown}")
            relabelled = tuple(m.model_copy(update={"label": self.metrics.labels.get(m.code, m.label)}) for m in catalogue)
            extra = {name: set(s.extra_columns) for name, s in self.sources.items()}
            return MetricCatalogue(metrics=relabelled).checked(extra)
        except ValidationError as exc:
            raise ConfigError(f"metrics: {_first_error(exc)}") from None
        except ValueError as exc:
            raise ConfigError(f"metrics: {exc}") from None


@dataclass(frozen=True)
class Horizon:
    """The label window of an as_of: [as_of, end(as_of)), by calendar steps of the schedule or days."""

    days: int | None = None
    steps: int | None = None
    schedule: ScheduleConfig | None = None

    def end(self, as_of: dt.date) -> dt.date:
        return as_of + dt.timedelta(days=self.days) if self.days else self.schedule.step(as_of, self.steps)

    @property
    def max_days(self) -> int:
        """The longest window in days (the purge gap between training slices)."""
        starts = [dt.date(2024, month, 1) for month in range(1, 13)]
        return max((self.end(d) - d).days for d in starts)

    def __str__(self) -> str:
        if self.days:
            return f"{self.days} days"
        unit = {"month": "month", "week": "week"}.get(self.schedule.every, f"{self.schedule.every} step")
        return f"{self.steps} {unit}{'s' if self.steps > 1 else ''}"


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


def reference_markdown() -> str:
    """docs/CONFIG.md: every key of the config, from the typed models themselves (type, default,
    and the comment on its definition), so the reference cannot drift from the code."""
    out = ["# Config reference", "",
           "Every key of `healthscore.yaml`, generated from the typed config (`healthscore config-reference`; a test",
           "keeps this file in sync). `healthscore init` writes a starter config from your tables.", ""]
    _section(Config, "", out)
    return "\n".join(out) + "\n"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    notes = _field_comments(model)
    doc = " ".join((model.__doc__ or "").split())
    out += [f"## `{prefix or '(top level)'}`", ""] + ([doc, ""] if doc else [])
    out += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested = []
    for name, info in model.model_fields.items():
        inner = _model_of(info.annotation)
        key = f"{prefix}{name}"
        if inner is not None:
            many = "[]" if "list" in str(info.annotation) else ".<name>" if "dict" in str(info.annotation) else ""
            nested.append((inner, f"{key}{many}."))
        value = info.get_default(call_default_factory=True)
        value = value.isoformat() if isinstance(value, dt.date) else repr(value)  # as the YAML is written
        default = "required" if info.is_required() else ("" if inner else f"`{value}`")
        kind = _type_text(info.annotation)
        meaning = notes.get(name, "").replace("|", "\\|")
        out.append(f"| `{key}` | {kind} | {default} | {meaning} |")
    out.append("")
    for inner, sub in nested:
        _section(inner, sub, out)


def _model_of(annotation) -> type[BaseModel] | None:
    import typing

    for arg in (annotation, *typing.get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _type_text(annotation) -> str:
    text = str(annotation).replace("typing.", "").replace("datetime.", "").replace("pathlib.", "")
    text = re.sub(r"healthscore\.[\w.]+\.(\w+)", r"\1", text)
    text = re.sub(r"<class '(\w+)'>", r"\1", text)
    return text.replace("|", "\\|")


def _field_comments(model: type[BaseModel]) -> dict[str, str]:
    """name -> the `# comment` at the end of (or on the lines above) the field's definition."""
    import inspect

    comments, above = {}, []
    for line in inspect.getsource(model).splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            above.append(stripped.lstrip("# "))
            continue
        m = re.match(r"\s+(\w+): [^=]+(?:=.*?)?(?:#\s*(.*))?$", line)
        if m and m.group(1) in model.model_fields:
            comments[m.group(1)] = " ".join(above + [m.group(2) or ""]).strip()
        above = []
    return comments
