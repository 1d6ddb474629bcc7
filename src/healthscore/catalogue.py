"""The metric catalogue: what each health metric means, how it is computed, and which way is good.

A metric is data, not code: users add their own in YAML. The SQL that computes them is generated
from these definitions in `healthscore.build.metric_sql`; the labels, formats, directions and families
here are what reason codes and reports speak with.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from healthscore.schema import SOURCE_SCHEMAS
from healthscore.sql_expressions import check_expression, referenced_columns

Aggregation = Literal[
    # over the source rows dated in [as_of - offset - window, as_of - offset)
    "count", "sum", "mean", "min", "max", "distinct_count",
    # point-in-time look-ups of the latest / earliest row before the observation date
    "last", "days_since_last", "days_since_first", "days_to_renewal", "attribute",
    # share of users who joined in the window and were active within `activation_days`
    "new_user_activation",
    # computed from other metrics
    "ratio", "pct_change", "expression",
]  # fmt: skip
WINDOWED = {"count", "sum", "mean", "min", "max", "distinct_count"}
ZERO_WHEN_EMPTY = {"count", "sum", "distinct_count"}
# A window only partly covered (the account is younger than it, or it reaches back before the data
# start): `scale` the covered part's value up to the whole window (counts and sums: the account's
# rate over the days it could act), leave it `missing`, or take it `as_is` (a mean or share of the
# covered part already estimates the window's; a days-since metric then reads "none in the window").
PartialWindow = Literal["scale", "missing", "as_is"]
SCALABLE = {"count", "sum", "distinct_count"}
DERIVED = {"ratio", "pct_change", "expression"}
_CODE = re.compile(r"^[a-z][a-z0-9_]*$")
# Names a source metric's SQL may use beside the source's columns (see metric_sql).
CONTEXT_COLUMNS = {"as_of"}
EVENT_COLUMNS = {"event_kind"}


class Metric(BaseModel):
    """One catalogue entry. `value` and `filter` are DuckDB SQL over the source's canonical columns
    (plus `as_of`, and `event_kind` for events)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str  # lower_snake_case, unique
    label: str  # how reasons and reports name it
    description: str = ""
    format: Literal["number", "integer", "percent", "days", "hours", "currency", "score", "text"] = "number"
    kind: Literal["numeric", "categorical"] = "numeric"
    aggregation: Aggregation  # how rows become one value per account and as_of (docs/METRICS.md)
    source: str | None = None  # the table it is computed from (none for ratio, pct_change, expression)
    value: str | None = None  # SQL over the source's columns (and your extra_columns): what is aggregated
    filter: str | None = None  # SQL condition: the rows that count
    date_column: str | None = None  # default: the source's time column
    window_days: int | None = Field(None, gt=0)  # None: all history before as_of; days_since_last: look-back and cap
    # a window only partly covered (young account, data start): scale, missing or as_is (default: docs/METRICS.md)
    partial_window: PartialWindow | None = None
    offset_days: int = Field(0, ge=0)  # shift the computation back in time
    activation_days: int = Field(30, gt=0)
    numerator: str | None = None
    denominator: str | None = None
    of: str | None = None  # pct_change: this metric now vs `period_days` earlier
    period_days: int | None = Field(None, gt=0)
    expression: str | None = None  # SQL over other metric codes listed in `inputs`
    inputs: list[str] = Field(default_factory=list)
    good_direction: Literal["higher", "lower", "none"] = "none"
    family: str
    missing_text: str = ""  # what a missing value means, for reason texts ("no NPS response on record")
    feature: bool = True  # False: a helper column, not given to the model

    @model_validator(mode="after")
    def _complete(self) -> Metric:
        if not _CODE.match(self.code):
            raise ValueError(f"metric code {self.code!r} must be lower_snake_case")
        agg = self.aggregation
        needs: dict[str, tuple[str, ...]] = {
            "ratio": ("numerator", "denominator"),
            "pct_change": ("of",),
            "expression": ("expression",),
            "sum": ("source", "value"),
            "mean": ("source", "value"),
            "min": ("source", "value"),
            "max": ("source", "value"),
            "distinct_count": ("source", "value"),
            "last": ("source", "value"),
            "attribute": ("source", "value"),
        }
        for attr in needs.get(agg, ("source",) if agg not in DERIVED else ()):
            if getattr(self, attr) in (None, ""):
                raise ValueError(f"metric {self.code!r}: aggregation {agg!r} needs `{attr}`")
        if self.source and self.source not in SOURCE_SCHEMAS:
            raise ValueError(f"metric {self.code!r}: unknown source {self.source!r}")
        if agg in DERIVED and self.source:
            raise ValueError(f"metric {self.code!r}: {agg!r} is computed from other metrics, not a source")
        if agg == "new_user_activation" and self.source != "users":
            raise ValueError(f"metric {self.code!r}: new_user_activation reads the users source")
        if agg == "days_to_renewal" and self.source != "subscriptions":
            raise ValueError(f"metric {self.code!r}: days_to_renewal reads the subscriptions source")
        if agg not in WINDOWED | {"new_user_activation", "days_since_last"} and self.window_days is not None:
            raise ValueError(f"metric {self.code!r}: window_days applies to windowed aggregations and days_since_last only")
        if self.partial_window and self.window_days is None:
            raise ValueError(f"metric {self.code!r}: partial_window needs window_days")
        if self.partial_window == "scale" and agg not in SCALABLE:
            raise ValueError(f"metric {self.code!r}: only {sorted(SCALABLE)} scale to the window; "
                             "use partial_window missing or as_is")
        if agg == "new_user_activation" and self.window_days is None:
            raise ValueError(f"metric {self.code!r}: new_user_activation needs window_days (the cohort)")
        if self.kind == "categorical" and agg not in ("last", "attribute"):
            raise ValueError(f"metric {self.code!r}: categorical metrics come from `last` or `attribute`")
        return self

    @property
    def partial_rule(self) -> PartialWindow | None:
        """How a partly covered window is read: the metric's own rule, else counts and sums scale
        and the rest are taken as they are; None for a metric without a window."""
        if self.window_days is None:
            return None
        return self.partial_window or ("scale" if self.aggregation in {"count", "sum"} else "as_is")

    @property
    def references(self) -> list[str]:
        """Codes of the metrics this one is computed from."""
        if self.aggregation == "ratio":
            return [self.numerator, self.denominator]
        if self.aggregation == "pct_change":
            return [self.of]
        return list(self.inputs)

    def source_columns(self) -> set[str]:
        """Columns of the source that this metric's SQL mentions (its `as_of`/`event_kind` aside)."""
        if not self.source:
            return set()
        used = set().union(*(referenced_columns(x) for x in (self.value, self.filter) if x))
        used |= {self.date_column} if self.date_column else set()
        if self.aggregation == "days_to_renewal":
            used |= {"renewal_date", "term"}
        return used - CONTEXT_COLUMNS - EVENT_COLUMNS

    def checked(self, columns: set[str]) -> Metric:
        """This metric with its SQL fragments checked against the names they may use (the source's
        columns, or the input metrics of an expression) and replaced by their normalised text:
        what metric_sql splices. Raises ValueError naming the metric and the fragment."""
        update = {}
        if self.source:
            allowed = columns | CONTEXT_COLUMNS | (EVENT_COLUMNS if self.source == "events" else set())
            parts = {"filter": self.filter, "value": self.value}
            if self.date_column and self.date_column not in columns:
                raise ValueError(f"metric {self.code!r} date_column: unknown column {self.date_column!r} of {self.source}")
        else:
            allowed, parts = set(self.inputs), {"expression": self.expression}
        for kind, sql in parts.items():
            if sql:
                try:
                    update[kind] = check_expression(sql, sorted(allowed), kind=kind)
                except ValueError as exc:
                    raise ValueError(f"metric {self.code!r} {kind}: {exc}") from None
        return self.model_copy(update=update)


class MetricCatalogue(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    metrics: tuple[Metric, ...]

    @model_validator(mode="after")
    def _consistent(self) -> MetricCatalogue:
        codes = [m.code for m in self.metrics]
        dupes = sorted({c for c in codes if codes.count(c) > 1})
        if dupes:
            raise ValueError(f"duplicate metric code(s): {dupes}")
        known = set(codes)
        for m in self.metrics:
            missing = [r for r in m.references if r not in known]
            if missing:
                raise ValueError(f"metric {m.code!r} refers to unknown metric(s) {missing}")
        self.ordered()  # raises on cycles
        return self

    def checked(self, extra_columns: Mapping[str, set[str]] | None = None) -> MetricCatalogue:
        """Every metric's SQL checked and normalised against its source's canonical columns plus
        the user's `extra_columns` of that source (see `Metric.checked`)."""
        extra = extra_columns or {}
        columns = {name: {c.name for c in schema.columns} | set(extra.get(name, ())) for name, schema in SOURCE_SCHEMAS.items()}
        return MetricCatalogue(metrics=tuple(m.checked(columns.get(m.source, set())) for m in self.metrics))

    def __iter__(self):
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def get(self, code: str) -> Metric:
        return next(m for m in self.metrics if m.code == code)

    def ordered(self) -> list[Metric]:
        """Metrics with every metric after those it is computed from."""
        by_code = {m.code: m for m in self.metrics}
        done: dict[str, Metric] = {}

        def visit(code: str, path: tuple[str, ...]) -> None:
            if code in done:
                return
            if code in path:
                raise ValueError(f"metrics refer to each other in a cycle: {' -> '.join(path + (code,))}")
            for ref in by_code[code].references:
                visit(ref, path + (code,))
            done[code] = by_code[code]

        for m in self.metrics:
            visit(m.code, ())
        return list(done.values())

    def available(self, columns_by_source: dict[str, set[str]],
                  leave_out: Mapping[str, str] | None = None) -> tuple[MetricCatalogue, list[str]]:
        """The metrics computable from the given sources and columns, and a note per one left out;
        `leave_out` (code -> why) leaves out more, with the metrics computed from them."""
        kept: dict[str, Metric] = {}
        notes: list[str] = []
        for m in self.ordered():
            why = (leave_out or {}).get(m.code)
            if why:
                pass
            elif m.source and m.source not in columns_by_source:
                why = f"source {m.source!r} not configured"
            elif m.source and (missing := sorted(m.source_columns() - columns_by_source[m.source])):
                why = f"{m.source} has no column(s) {missing}"
            elif m.aggregation == "new_user_activation" and "user_id" not in columns_by_source.get("events", set()):
                why = "events have no user_id column"
            elif lost := [r for r in m.references if r not in kept]:
                why = f"needs metric(s) {lost} that are left out"
            if why:
                notes.append(f"metric {m.code} left out: {why}")
            else:
                kept[m.code] = m
        return MetricCatalogue(metrics=tuple(kept.values())), notes

    @property
    def features(self) -> list[Metric]:
        return [m for m in self.metrics if m.feature]


def describe(m: Metric) -> str:
    """How a metric is computed, in a few words, for docs and the `metrics` command."""
    if m.aggregation == "ratio":
        how = f"{m.numerator} / {m.denominator}"
    elif m.aggregation == "pct_change":
        how = f"% change of {m.of} vs " + (f"{m.period_days} days earlier" if m.period_days else "the previous window")
    elif m.aggregation == "expression":
        how = m.expression
    else:
        how = f"{m.aggregation}({m.value or ''}) of {m.source}"
        if m.filter:
            how += f" where {m.filter}"
        if m.window_days:
            how += f", last {m.window_days} days" + (f" (none: {m.window_days})" if m.aggregation == "days_since_last" else "")
    return how


PARTIAL_TEXT = {"scale": "scaled", "missing": "missing", "as_is": "as is"}


def markdown_table(catalogue: MetricCatalogue) -> str:
    rows = ["| code | label | family | good direction | computed as | partial window |", "|---|---|---|---|---|---|"]
    for m in catalogue:
        how = describe(m).replace("|", r"\|")
        partial = PARTIAL_TEXT.get(m.partial_rule, "")
        rows.append(f"| `{m.code}` | {m.label} | {m.family} | {m.good_direction} | {how} | {partial} |")
    return "\n".join(rows) + "\n"


@cache
def load_default_catalogue() -> MetricCatalogue:
    """The built-in catalogue covering the metrics CS teams use (see docs/METRICS.md)."""
    text = resources.files("healthscore").joinpath("default_catalogue.yaml").read_text()
    return MetricCatalogue(metrics=tuple(Metric.model_validate(m) for m in yaml.safe_load(text)["metrics"])).checked()
