"""The SQL that turns the clean source views into one metric row per (account, as_of).

All metric SQL is generated here from the catalogue. The point-in-time rule is enforced in one
place each:
- windowed metrics join source rows to a calendar of (as_of, day) pairs with day < as_of, an
  equi-join on the day that stays cheap on hundreds of millions of events, and hide every value
  whose `revealed_by` date is not yet before as_of;
- look-ups of the latest row use DuckDB's ASOF JOIN with a strict `<` on the row's date.
A metric with `offset_days` is computed as it would have been `offset_days` before as_of, which
is how `pct_change` gets the previous window.
A window only partly covered, because the account opened inside it or it reaches back before the
first day of the data (the `account_starts` table), is read by the metric's `partial_rule`: the
covered part scaled up to the window, left missing, or taken as it is (`base_column`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from dataclasses import dataclass

from healthscore.catalogue import DERIVED, WINDOWED, ZERO_WHEN_EMPTY, Metric, MetricCatalogue
from healthscore.dataset import ACCOUNT_AGE, DATA_DAYS
from healthscore.schema import SOURCE_SCHEMAS

ACTIVATION = "users_activation"  # derived relation: one row per user with an `activated` flag
ACCOUNT_STARTS = "account_starts"  # one row per account: the day it opened and the data start


@dataclass(frozen=True)
class MetricQuery:
    """A query returning (account_id, as_of, <metric columns>) for the observations table."""

    name: str
    sql: str
    columns: tuple[str, ...]


def shifted(metric: Metric, days: int, catalogue: dict[str, Metric], out: dict[str, Metric]) -> str:
    """Add to `out` a copy of `metric` (and of what it is computed from) `days` further back."""
    code = f"{metric.code}__prev{days}"
    if code not in out:
        refs = {r: shifted(catalogue[r], days, catalogue, out) for r in metric.references}
        update: dict = {"code": code, "feature": False}
        if metric.aggregation in DERIVED:
            update |= {k: refs.get(getattr(metric, k), getattr(metric, k)) for k in ("numerator", "denominator", "of")}
            update["inputs"] = [refs[i] for i in metric.inputs]
            if metric.expression:
                update["expression"] = _substitute(metric.expression, {i: refs[i] for i in metric.inputs})
        else:
            update["offset_days"] = metric.offset_days + days
        out[code] = metric.model_copy(update=update)
    return code


def expand(catalogue: MetricCatalogue) -> list[Metric]:
    """The catalogue plus the hidden shifted copies that `pct_change` compares against."""
    by_code = {m.code: m for m in catalogue.ordered()}
    out: dict[str, Metric] = {}
    for m in by_code.values():
        if m.aggregation == "pct_change":
            base = by_code[m.of]
            period = m.period_days or base.window_days
            if period is None:
                raise ValueError(f"metric {m.code!r}: pct_change of {m.of!r} needs period_days")
            prev = shifted(base, period, {**by_code, **out}, out)
            m = m.model_copy(update={"inputs": [m.of, prev]})
        out[m.code] = m
    return list(out.values())


def _substitute(sql: str, names: dict[str, str]) -> str:
    return re.sub(r"\b[a-z_][a-z0-9_]*\b", lambda t: names.get(t.group(0), t.group(0)), sql)


def _date_column(m: Metric) -> str:
    return m.date_column or SOURCE_SCHEMAS[m.source].time_column


def _relation(m: Metric) -> str:
    return ACTIVATION if m.aggregation == "new_user_activation" else f"src_{m.source}"


def _masked_columns(source: str, present: set[str]) -> list[str]:
    """`col` replaced by NULL while the date that reveals it is not before as_of."""
    return [
        f"CASE WHEN {c.revealed_by} < as_of THEN {c.name} END AS {c.name}"
        for c in SOURCE_SCHEMAS[source].columns
        if c.revealed_by and c.name in present and c.revealed_by in present
    ]


def windowed_query(metrics: list[Metric], present: set[str]) -> MetricQuery:
    """Window aggregates of one relation, date column and offset, in one scan of the source."""
    first = metrics[0]
    relation, date_col, offset = _relation(first), _date_column(first), first.offset_days
    if first.aggregation == "new_user_activation":
        date_col, offset = "created_at", first.offset_days + first.activation_days
    spans = [m.window_days for m in metrics]
    span = "NULL" if None in spans else str(max(spans))
    aggs = []
    for m in metrics:
        window = f"_age <= {m.window_days}" if m.window_days else "true"
        where = f"{window} AND ({m.filter})" if m.filter else window
        value = "CAST(activated AS DOUBLE)" if m.aggregation == "new_user_activation" else m.value
        fn = {"count": "count(*)", "distinct_count": f"count(DISTINCT {value})", "new_user_activation": f"avg({value})"}.get(
            m.aggregation, f"{m.aggregation.replace('mean', 'avg')}({value})"
        )
        aggs.append(f"CAST({fn} FILTER (WHERE {where}) AS DOUBLE) AS {m.code}")
    masks = _masked_columns(first.source, present) if relation.startswith("src_") else []
    replace = f" REPLACE ({', '.join(masks)})" if masks else ""
    sql = f"""
    WITH cal AS (
        SELECT obs_as_of, as_of, CAST(d AS DATE) AS _day
        FROM (SELECT DISTINCT as_of AS obs_as_of, CAST(as_of - {offset} AS DATE) AS as_of FROM observations) o,
             range(CAST(coalesce(o.as_of - {span}, (SELECT min(CAST({date_col} AS DATE)) FROM {relation})) AS TIMESTAMP),
                   CAST(o.as_of AS TIMESTAMP), INTERVAL 1 DAY) t(d)
    ),
    rows AS (
        SELECT * {replace} FROM (
            SELECT s.*, cal.obs_as_of, cal.as_of, date_diff('day', cal._day, cal.as_of) AS _age
            FROM {relation} s JOIN cal ON CAST(s.{date_col} AS DATE) = cal._day
        )
    )
    SELECT account_id, obs_as_of AS as_of, {', '.join(aggs)}
    FROM rows GROUP BY account_id, obs_as_of"""
    return MetricQuery(f"{relation}:{date_col}:-{offset}d", sql, tuple(m.code for m in metrics))


def lookup_query(m: Metric) -> MetricQuery:
    """Point-in-time look-ups: the latest (or first) row strictly before as_of - offset."""
    src, date_col = f"src_{m.source}", _date_column(m)
    where = f"WHERE {m.filter}" if m.filter else ""
    ref = f"CAST(o.as_of - {m.offset_days} AS DATE)"
    obs = f"(SELECT account_id, as_of, {ref} AS _ref FROM observations o)"
    if m.aggregation == "attribute":
        sql = f"SELECT o.account_id, o.as_of, s.{m.value} AS {m.code} FROM observations o LEFT JOIN {src} s USING (account_id)"
    elif m.aggregation == "days_since_first":
        sql = f"""
        SELECT o.account_id, o.as_of,
               CAST(CASE WHEN f._first < o._ref THEN date_diff('day', f._first, o._ref) END AS DOUBLE) AS {m.code}
        FROM {obs} o LEFT JOIN (
            SELECT account_id, min(CAST({date_col} AS DATE)) AS _first FROM {src} {where} GROUP BY account_id
        ) f USING (account_id)"""
    else:
        if m.aggregation == "last":
            pick = f"max({m.value})" if m.kind == "categorical" else f"avg({m.value})"
            value = "r._v" if m.kind == "categorical" else "CAST(r._v AS DOUBLE)"
        elif m.aggregation == "days_since_last":
            pick, value = "NULL", "CAST(date_diff('day', r._day, o._ref) AS DOUBLE)"
        else:  # days_to_renewal: roll a past renewal date forward by whole contract terms
            pick = "max(renewal_date)"
            months = "CASE WHEN lower(max(term)) SIMILAR TO '.*(annual|year).*' THEN 12 WHEN lower(max(term)) LIKE '%quarter%' THEN 3 ELSE 1 END"
            pick = f"{pick} AS _renewal, {months}"
            steps = "CAST(ceil(greatest(date_diff('month', r._renewal, o._ref), 0) / r._v) * r._v AS INTEGER)"
            rolled = f"CAST(r._renewal + to_months({steps}) AS DATE)"
            nxt = f"CASE WHEN {rolled} < o._ref THEN CAST({rolled} + to_months(CAST(r._v AS INTEGER)) AS DATE) ELSE {rolled} END"
            value = f"CAST(date_diff('day', o._ref, {nxt}) AS DOUBLE)"
        sql = f"""
        WITH r AS (
            SELECT account_id, CAST({date_col} AS DATE) AS _day, {pick} AS _v
            FROM {src} {where} GROUP BY account_id, _day
        )
        SELECT o.account_id, o.as_of, {value} AS {m.code}
        FROM {obs} o ASOF LEFT JOIN r ON o.account_id = r.account_id AND o._ref > r._day"""
    return MetricQuery(m.code, sql, (m.code,))


def activation_relation_sql(activation_days: int) -> str:
    """Each user with whether they were active within `activation_days` of joining."""
    return f"""
    CREATE OR REPLACE TEMP VIEW {ACTIVATION} AS
    SELECT u.account_id, u.user_id, u.created_at, count(e.user_id) > 0 AS activated
    FROM src_users u LEFT JOIN (SELECT DISTINCT user_id, event_date FROM src_events) e
      ON e.user_id = u.user_id AND e.event_date >= u.created_at AND e.event_date < u.created_at + {activation_days}
    GROUP BY u.account_id, u.user_id, u.created_at"""


def base_queries(metrics: list[Metric], present: dict[str, set[str]]) -> list[MetricQuery]:
    """Group the source metrics into as few scans as the point-in-time rules allow."""
    groups: dict[tuple, list[Metric]] = {}
    lookups = []
    for m in metrics:
        if m.aggregation in WINDOWED or m.aggregation == "new_user_activation":
            key = (_relation(m), _date_column(m), m.offset_days, m.activation_days if m.aggregation == "new_user_activation" else 0)
            groups.setdefault(key, []).append(m)
        elif m.aggregation not in DERIVED:
            lookups.append(lookup_query(m))
    return [windowed_query(g, present.get(g[0].source, set())) for g in groups.values()] + lookups


def derived_sql(metrics: list[Metric]) -> dict[str, str]:
    """SQL expressions over base metric columns for every derived metric, inlined recursively."""
    exprs: dict[str, str] = {}
    for m in metrics:
        if m.aggregation == "ratio":
            exprs[m.code] = f"(CAST({_ref(m.numerator, exprs)} AS DOUBLE) / NULLIF({_ref(m.denominator, exprs)}, 0))"
        elif m.aggregation == "pct_change":
            now, prev = (_ref(i, exprs) for i in m.inputs)
            exprs[m.code] = f"(CAST({now} - {prev} AS DOUBLE) / NULLIF({prev}, 0))"
        elif m.aggregation == "expression":
            exprs[m.code] = "(" + _substitute(m.expression, {i: _ref(i, exprs) for i in m.inputs}) + ")"
    return exprs


def _ref(code: str, exprs: dict[str, str]) -> str:
    return exprs.get(code, code)


def account_starts_sql(data_start: dict[str, dt.date], has_created_at: bool) -> str:
    """Each account's first day (its creation date or first contract, whichever is earlier) and
    the first day of each dated table (`start_<table>`): what covers a metric's window."""
    created = "a.created_at" if has_created_at else "NULL"
    starts = "".join(f", DATE '{day.isoformat()}' AS start_{name}" for name, day in sorted(data_start.items()))
    return f"""
    SELECT a.account_id, CAST(least({created}, f._first) AS DATE) AS opened{starts}
    FROM src_accounts a LEFT JOIN (
        SELECT account_id, min(start_date) AS _first FROM src_subscriptions GROUP BY account_id
    ) f USING (account_id)"""


def base_column(m: Metric, ref: str, dated: Collection[str]) -> str:
    """The metric's column from its query's `ref`, empty counts as 0 and a partly covered window
    read by the metric's rule; needs the observation `o` and its `account_starts` row `s`, which
    has the data start of the `dated` tables."""
    value = f"coalesce({ref}, 0)" if m.aggregation in ZERO_WHEN_EMPTY else ref
    rule, window = m.partial_rule, m.window_days
    if rule is None:
        return value
    end = f"CAST(o.as_of - {m.offset_days} AS DATE)"
    start = f"s.start_{m.source}" if m.source in dated else "NULL"
    covered = f"date_diff('day', greatest(CAST(o.as_of - {m.offset_days + window} AS DATE), s.opened, {start}), {end})"
    if m.aggregation == "days_since_last":  # nothing within the look-back reads as the whole look-back
        found = f"least({ref}, {window})"
        return f"coalesce({found}, {window})" if rule == "as_is" else f"CASE WHEN {ref} <= {window} OR {covered} >= {window} THEN coalesce({found}, {window}) END"
    if rule == "scale":  # a whole count, as whole windows hold: a rare event's 1.98 would sit between their bins
        return f"CASE WHEN {covered} >= {window} THEN {value} WHEN {covered} > 0 THEN round({value} * {window} / {covered}) END"
    if rule == "missing":
        return f"CASE WHEN {covered} >= {window} THEN {value} END"
    return value


def coverage_columns(dated: Collection[str]) -> dict[str, str]:
    """Column -> SQL: the account's age and each dated table's days of data at as_of, which a
    reason text compares with a metric's window."""
    return {ACCOUNT_AGE: "date_diff('day', s.opened, o.as_of)"} | {
        f"{DATA_DAYS}_{name}": f"date_diff('day', s.start_{name}, o.as_of)" for name in sorted(dated)}


def window_source(code: str, metrics: dict[str, Metric]) -> str | None:
    """The table whose data start bounds a metric's window (the first windowed one it reads)."""
    m = metrics[code]
    if m.window_days and m.source:
        return m.source
    return next((s for r in dict.fromkeys([*m.references, *m.inputs]) if (s := window_source(r, metrics))), None)


def lookback(code: str, metrics: dict[str, Metric]) -> int | None:
    """How far back a metric's windows reach (offsets included), through what it is computed from."""
    m = metrics[code]
    own = [m.offset_days + m.window_days] if m.window_days else []
    spans = own + [d for r in dict.fromkeys([*m.references, *m.inputs]) if (d := lookback(r, metrics))]
    return max(spans) if spans else None


def assemble_sql(metrics: list[Metric], tables: dict[str, MetricQuery], keep: list[str], attributes: dict[str, str],
                 dated: Collection[str]) -> str:
    """One SELECT joining every materialised metric query onto the observations, in catalogue order,
    with the coverage columns (`coverage_columns` of the `dated` tables)."""
    joins, base_cols = [], []
    by_code = {m.code: m for m in metrics}
    for i, (table, q) in enumerate(tables.items()):
        joins.append(f"LEFT JOIN {table} q{i} USING (account_id, as_of)")
        base_cols += [f"{base_column(by_code[c], f'q{i}.{c}', dated)} AS {c}" for c in q.columns]
    derived = derived_sql(metrics)
    coverage = coverage_columns(dated)
    attrs = "".join(f", a.{out}" for out in attributes.values())
    attr_cols = "".join(f", {col} AS {out}" for col, out in attributes.items())
    return f"""
    WITH base AS (
        SELECT o.account_id, o.as_of, {', '.join(f'{sql} AS {c}' for c, sql in coverage.items())}, {', '.join(base_cols)}
        FROM observations o {' '.join(joins)} LEFT JOIN {ACCOUNT_STARTS} s USING (account_id)
    )
    SELECT b.account_id, b.as_of{attrs}, {''.join(f'b.{c}, ' for c in coverage)}
           {', '.join(derived.get(c, 'b.' + c) + ' AS ' + c for c in keep)}, o.churned
    FROM base b JOIN observations o USING (account_id, as_of)
    LEFT JOIN (SELECT account_id{attr_cols} FROM src_accounts) a USING (account_id)
    ORDER BY b.as_of, b.account_id"""


def metric_listing(catalogue: MetricCatalogue, code: str, present: dict[str, set[str]] | None = None) -> str:
    """One metric's exact SQL as a listing an analyst can read and run against the `observations`
    and `account_starts` tables and the clean `src_<table>` views: a query per base metric it
    needs, then the metric.
    The build runs the same queries, several base metrics of one source sharing a scan."""
    metrics = {m.code: m for m in expand(catalogue)}
    if code not in metrics:
        raise KeyError(code)
    present = present or {name: {c.name for c in schema.columns} for name, schema in SOURCE_SCHEMAS.items()}
    dated = [name for name, schema in SOURCE_SCHEMAS.items() if schema.time_column]
    order: list[str] = []

    def collect(c: str) -> None:
        for dep in dict.fromkeys([*metrics[c].references, *metrics[c].inputs]):
            collect(dep)
        if c not in order:
            order.append(c)

    collect(code)
    bases = [metrics[c] for c in order if metrics[c].aggregation not in DERIVED]
    ctes = []
    for m in bases:
        windowed = m.aggregation in WINDOWED or m.aggregation == "new_user_activation"
        query = windowed_query([m], present.get(m.source, set())) if windowed else lookup_query(m)
        ctes.append(f"{m.code} AS ({query.sql.rstrip()}\n)")
    columns = [f"{base_column(m, f'{m.code}.{m.code}', dated)} AS {m.code}" for m in bases]
    joins = " ".join(f"LEFT JOIN {m.code} USING (account_id, as_of)" for m in bases) + f" LEFT JOIN {ACCOUNT_STARTS} s USING (account_id)"
    value = derived_sql([metrics[c] for c in order]).get(code, code)
    return (f"-- {code}: {metrics[code].label}\nWITH {', '.join(ctes)},\n"
            f"base AS (SELECT o.account_id, o.as_of, {', '.join(columns)} FROM observations o {joins})\n"
            f"SELECT account_id, as_of, {value} AS {code} FROM base ORDER BY as_of, account_id\n")
