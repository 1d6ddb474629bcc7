"""Metric QA: does each metric measure something? (the metric checks of "Fighting Churn with
Data": how many rows have a value, how many a non-zero one, its range, when it has data.)

Before the metrics are computed, every filter is run once against its source: one that matches
no row (an event name or kind with a typo, events never mapped to the kind a metric counts)
names the metric, the values present and the closest one. After, a metric with one value on
every row measures nothing either. Both are errors, or with `metrics.unusable: drop` left out
with a note. The coverage table goes beside the dataset (`<name>.coverage.csv`).
"""

from __future__ import annotations

import difflib

import duckdb
import pandas as pd

from healthscore.catalogue import Metric, MetricCatalogue
from healthscore.dataset import FeatureSpec
from healthscore.errors import DataError
from healthscore.sql_expressions import referenced_columns, string_literals

COVERAGE_COLUMNS = ["metric", "label", "rows", "non_null_share", "non_zero_share", "min", "median", "max",
                    "first_as_of", "last_as_of"]
_TEXT_COLUMNS = {"event_kind", "event_type", "priority", "topic", "channel", "plan", "term", "segment", "industry", "region"}


def unmatched_filters(con: duckdb.DuckDBPyConnection, catalogue: MetricCatalogue) -> dict[str, str]:
    """code -> why, for every metric whose filter matches no row of its source (one scan per
    source). A filter that reads `as_of` depends on the date (and on values not yet revealed):
    the constant check after the build judges it."""
    by_source: dict[str, list[Metric]] = {}
    for m in catalogue:
        if m.source and m.filter and m.aggregation != "new_user_activation" and "as_of" not in referenced_columns(m.filter):
            by_source.setdefault(m.source, []).append(m)
    out = {}
    for source, metrics in by_source.items():
        relation = f"src_{source}"
        counts = con.execute(f"SELECT {', '.join(f'count(*) FILTER (WHERE {m.filter})' for m in metrics)} FROM {relation}").fetchone()
        for m, n in zip(metrics, counts):
            if not n:
                out[m.code] = f"its filter {m.filter} matches no row of {source}" + _present(con, m, relation)
    return out


def _present(con: duckdb.DuckDBPyConnection, m: Metric, relation: str) -> str:
    """The values of the filter's text columns that do exist, and the closest to what it asks for."""
    wanted = string_literals(m.filter)
    parts = []
    for col in sorted(referenced_columns(m.filter) & _TEXT_COLUMNS):
        shown = "event_type, event_kind" if col == "event_kind" else col
        rows = con.execute(f"SELECT {shown}, count(*) FROM {relation} GROUP BY ALL ORDER BY count(*) DESC LIMIT 12").fetchall()
        values = [str(r[-2]) for r in rows]
        listed = ", ".join(f"{r[0]!r}" + (f" (kind {r[1]!r})" if len(r) == 3 and r[1] != r[0] else "") + f" {r[-1]:,}" for r in rows)
        parts.append(f"; {col.replace('event_kind', 'event types')} present: {listed}")
        close = [c for w in wanted for c in difflib.get_close_matches(w, values + [v.lower() for v in values], 1, 0.5)]
        if close:
            parts.append(f"; closest to {wanted[0]!r}: {close[0]!r}")
        if col == "event_kind":
            parts.append(" (group your event types into kinds with sources.events.event_kinds)")
    return "".join(parts)


def constant_metrics(frame: pd.DataFrame, features: list[FeatureSpec]) -> dict[str, str]:
    """code -> why, for every feature with at most one distinct value (missing counts as none)."""
    out = {}
    for f in features:
        values = frame[f.code].dropna()
        if values.nunique() <= 1:
            out[f.code] = f"it is {_text(values.iloc[0])} on every row that has a value" if len(values) else "it is missing on every row"
    return out


def refuse_unusable(unusable: dict[str, str], labels: dict[str, str], policy: str) -> dict[str, str]:
    """An error naming every metric that measures nothing, or (policy `drop`) code -> the note
    to leave it out with."""
    lines = {code: f"measures nothing ({labels.get(code, code)}): {why}" for code, why in unusable.items()}
    if lines and policy == "error":
        raise DataError("; ".join(f"metric {code} {line}" for code, line in lines.items())
                        + " (fix the filter or sources.events.event_kinds, list the metric in metrics.drop, "
                        "or set metrics.unusable: drop to leave such metrics out with a note)")
    return lines


def coverage_table(frame: pd.DataFrame, features: list[FeatureSpec], as_of_column: str | None = "as_of") -> pd.DataFrame:
    """One row per feature: share with a value, share non-zero, min / median / max, and the first
    and last as_of on which it has a (non-zero) value."""
    rows = []
    for f in features:
        values = frame[f.code]
        numeric = f.kind == "numeric"
        has = values.notna() & (values != 0) if numeric else values.notna()
        dates = frame.loc[has, as_of_column] if as_of_column in frame else pd.Series(dtype=object)
        stats = values.dropna().astype(float).agg(["min", "median", "max"]) if numeric and values.notna().any() else {}
        rows.append({"metric": f.code, "label": f.label, "rows": len(values),
                     "non_null_share": float(values.notna().mean()) if len(values) else 0.0,
                     "non_zero_share": float(has.mean()) if len(values) else 0.0,
                     **{k: stats.get(k) if len(stats) else None for k in ("min", "median", "max")},
                     "first_as_of": dates.min() if len(dates) else None, "last_as_of": dates.max() if len(dates) else None})
    return pd.DataFrame(rows, columns=COVERAGE_COLUMNS)



def _text(value) -> str:
    return f"{float(value):g}" if isinstance(value, int | float) else repr(str(value))
