"""`healthscore init`: a commented starter config from the user's own tables.

It reads the tables once (columns, types, date ranges, event types with counts, churns per
month) and decides what it can be sure of: column mappings by name and type, every event type
under a proposed kind, a data end the subscriptions can support, a schedule and a horizon the
history can train on, and the metrics that apply (built-in ones whose inputs exist, plus one
per event type in the user's own words). What it cannot decide is listed, never guessed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from healthscore.build.labels import subscriptions_end
from healthscore.build.sources import ident, sql_str
from healthscore.catalogue import load_default_catalogue
from healthscore.config import Config, add_months
from healthscore.schema import SOURCE_SCHEMAS
from healthscore.settings import SplitConfig

# Names an export commonly gives each canonical column (after the canonical name itself).
SYNONYMS = {
    "account_id": ["account", "customer_id", "customer", "org_id", "organisation_id", "organization_id", "company_id",
                   "tenant_id", "client_id", "uid", "id"],
    "name": ["account_name", "company", "company_name", "customer_name"],
    "segment": ["tier", "customer_segment"],
    "created_at": ["signup_date", "signed_up_at", "signup", "created", "joined_at", "registered_at", "created_on"],
    "subscription_id": ["sub_id", "contract_id"],
    "plan": ["plan_name", "product", "package"],
    "mrr": ["monthly_revenue", "price", "amount", "fee"],
    "start_date": ["started_at", "start", "plan_start", "subscription_start", "period_start", "begin_date", "valid_from"],
    "end_date": ["ended_at", "end", "cancelled_at", "cancelled_on", "canceled_at", "canceled_on", "churn_date",
                 "period_end", "valid_to", "cancel_date"],
    "renewal_date": ["renews_at", "renewal"],
    "event_date": ["date", "day", "ts", "timestamp", "event_time", "occurred_at", "time", "event_timestamp", "created_at"],
    "event_type": ["type", "event", "event_name", "name", "action", "metric", "metric_name", "kind"],
    "quantity": ["count", "value", "qty", "n", "amount", "units", "calls", "total"],
    "user_id": ["user", "member_id", "actor_id"],
    "opened_at": ["created_at", "opened", "created"],
    "closed_at": ["resolved_at", "solved_at", "closed"],
}
LOGIN = re.compile(r"log_?in|sign_?in|session_?start|app_?open|visit", re.I)
MINUTES = re.compile(r"minute|duration|time_?spent|session_?length", re.I)
BAD = re.compile(r"error|fail|crash|cancel|complain|refund|bounce|unsubscribe|downgrade", re.I)  # more is worse
_DATE_TYPES = ("DATE", "TIMESTAMP")
_NUMBER_TYPES = ("INTEGER", "BIGINT", "DOUBLE", "FLOAT", "DECIMAL", "HUGEINT", "SMALLINT", "TINYINT", "UBIGINT", "UINTEGER")
TOP_EVENT_METRICS = 10


@dataclass
class Starter:
    """What `init` found and decided: the config (as a dict), its comments and what it left open."""

    config: dict
    comments: dict[str, str] = field(default_factory=dict)  # top-level key -> comment above it
    undecided: list[str] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    first_event: dt.date | None = None
    event_counts: list[tuple[str, int]] = field(default_factory=list)  # event type, rows; most frequent first


def _relation(path: Path) -> str:
    fmt = "read_csv" if path.suffix.lower() in (".csv", ".tsv", ".txt") or path.name.endswith(".csv.gz") else "read_parquet"
    return f"{fmt}({sql_str(str(path))})"


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    return {r[0]: r[1].split("(")[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}


def _pick(canonical: str, columns: dict[str, str], taken: set[str], types: tuple[str, ...] | None) -> str | None:
    lower = {c.lower(): c for c in columns if c not in taken}
    for name in [canonical, *SYNONYMS.get(canonical, [])]:
        col = lower.get(name)
        if col and (types is None or columns[col].startswith(types)):
            return col
    return None


def _map(source: str, columns: dict[str, str], starter: Starter, id_hint: str | None = None) -> dict[str, str]:
    """canonical -> the user's column, for every canonical column found by name and type."""
    found: dict[str, str] = {}
    for col in SOURCE_SCHEMAS[source].columns:
        types = _DATE_TYPES if col.type in ("date", "timestamp") else _NUMBER_TYPES if col.type in ("number", "integer") else None
        hit = id_hint if col.name == "account_id" and id_hint in columns else _pick(col.name, columns, set(found.values()), types)
        if hit:
            found[col.name] = hit
        elif col.required:
            starter.undecided.append(f"{source}.{col.name}: no column looks like it (columns: {', '.join(columns)}); "
                                     f"map it under sources.{source}.columns")
    return found


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "event"


def inspect_tables(accounts: Path, subscriptions: Path, events: Path, optional: dict[str, Path] | None = None,
                   base: Path | None = None) -> Starter:
    """Read the tables and decide the starter config (see the module docstring)."""
    con = duckdb.connect()
    starter = Starter(config={"sources": {}})
    paths = {"accounts": accounts, "subscriptions": subscriptions, "events": events, **(optional or {})}
    rels = {name: _relation(path) for name, path in paths.items()}
    mapped: dict[str, dict[str, str]] = {}
    account_cols = _columns(con, rels["accounts"])
    mapped["accounts"] = _map("accounts", account_cols, starter)
    for name in paths:
        if name != "accounts":
            mapped[name] = _map(name, _columns(con, rels[name]), starter, mapped["accounts"].get("account_id"))
    for name, path in paths.items():
        entry: dict = {"path": str(path.resolve().relative_to(base.resolve())) if base and path.resolve().is_relative_to(base.resolve()) else str(path)}
        renamed = {c: u for c, u in mapped[name].items() if c != u}
        if renamed:
            entry["columns"] = renamed
        starter.config["sources"][name] = entry
    if starter.undecided:
        return starter
    _extra_account_columns(con, rels["accounts"], account_cols, mapped["accounts"], starter)
    data_end = _dates(con, rels, mapped, starter)
    kinds = _event_kinds(con, rels["events"], mapped["events"], starter)
    _schedule(data_end, starter)
    _metrics(kinds, starter)
    return starter


def _extra_account_columns(con, rel: str, columns: dict[str, str], mapped: dict[str, str], starter: Starter) -> None:
    """Other accounts columns a model can use: numbers and few-valued texts become attribute metrics."""
    extra, metrics = {}, []
    for col, typ in columns.items():
        if col in mapped.values():
            continue
        name = _slug(col)
        if typ.startswith(_NUMBER_TYPES):
            kind, fmt = "number", "number"
        elif typ.startswith("VARCHAR") and con.execute(f"SELECT count(DISTINCT {ident(col)}) FROM {rel}").fetchone()[0] <= 30:
            kind, fmt = "category", "text"
        else:
            continue
        if name in {c.name for c in SOURCE_SCHEMAS["accounts"].columns} or name in extra:
            continue
        extra[name] = kind
        if name != col:
            starter.config["sources"]["accounts"].setdefault("columns", {})[name] = col
        metrics.append({"code": f"account_{name}", "label": col.replace("_", " ").capitalize(), "source": "accounts",
                        "aggregation": "attribute", "value": name, "format": fmt, "family": "contract_plan",
                        **({"kind": "categorical"} if kind == "category" else {})})
    if extra:
        starter.config["sources"]["accounts"]["extra_columns"] = extra
        starter.config.setdefault("metrics", {}).setdefault("add", []).extend(metrics)


def _dates(con, rels: dict[str, str], mapped: dict[str, dict[str, str]], starter: Starter) -> dt.date:
    ev, sub = mapped["events"], mapped["subscriptions"]
    first, last, rows = con.execute(f"SELECT min(CAST({ident(ev['event_date'])} AS DATE)), max(CAST({ident(ev['event_date'])} AS DATE)), "
                                    f"count(*) FROM {rels['events']}").fetchone()
    start_col, end_col = ident(sub["start_date"]), ident(sub["end_date"])
    events_end = last + dt.timedelta(days=1)
    renamed = f"(SELECT {start_col} AS s, {end_col} AS e, {ident(sub['account_id'])} AS account_id FROM {rels['subscriptions']})"
    data_end, why = subscriptions_end(con, renamed, "s", "e", events_end)
    starter.facts.append(f"events: {rows:,} rows from {first} to {last}")
    if data_end < events_end:
        starter.facts.append(f"data_end {data_end}, not {events_end}: {why}")
    churns = con.execute(f"""SELECT strftime(CAST({end_col} AS DATE), '%Y-%m') AS month, count(*) FROM {rels['subscriptions']}
                             WHERE {end_col} IS NOT NULL GROUP BY 1 ORDER BY 1""").fetchall()
    starter.facts.append("contract ends per month: " + ", ".join(f"{m} {n:,}" for m, n in churns))
    starter.config["data_end"] = data_end
    starter.comments["data_end"] = ("First day without data: the day after the last event, or where the subscriptions "
                                    "export stops when that is earlier (labels must not read an export cut-off as churn).")
    starter.first_event = first
    return data_end


def _event_kinds(con, rel: str, ev: dict[str, str], starter: Starter) -> dict[str, list[str]]:
    """Every event type under a proposed kind: sign-ins -> login, durations -> session_minutes,
    the rest -> feature."""
    counts = con.execute(f"SELECT CAST({ident(ev['event_type'])} AS VARCHAR), count(*) FROM {rel} GROUP BY 1 ORDER BY 2 DESC").fetchall()
    kinds: dict[str, list[str]] = {}
    for name, _ in counts:
        if name is None:
            continue
        kind = "login" if LOGIN.search(name) else "session_minutes" if MINUTES.search(name) else "feature"
        kinds.setdefault(kind, []).append(name)
    starter.config["sources"]["events"]["event_kinds"] = kinds
    starter.facts.append("event types: " + ", ".join(f"{n} ({c:,})" for n, c in counts))
    starter.event_counts = [c for c in counts if c[0] is not None]
    return kinds


def _schedule(data_end: dt.date, starter: Starter) -> None:
    """Monthly as_of dates with a horizon in months when a year or more of history can train
    with the default split; else weekly dates with a horizon of 4 weeks and a smaller split."""
    first = starter.first_event
    split = SplitConfig()
    for every, horizon, warm_up in (("month", 3, 90), ("month", 1, 30), ("week", 4, 28), ("week", 2, 28)):
        start = first + dt.timedelta(days=warm_up)
        if every == "month":
            start = add_months(start.replace(day=1), 1) if start.day > 1 else start
            labelled = [d for d in _months(start, data_end) if add_months(d, horizon) <= data_end]
        else:
            labelled = [start + dt.timedelta(weeks=w) for w in range(0, 520)
                        if start + dt.timedelta(weeks=w + horizon) <= data_end]
        test = split.test_dates if every == "month" else 2
        if len(labelled) >= test + split.folds + 2 * horizon + 2:  # a date per cross-fitting fold at least, a month's slack
            break
    else:
        starter.undecided.append(f"schedule: {first} .. {data_end} is too short to train on (fewer than 9 weekly dates with "
                                 "a 2-week horizon); export more history")
        return
    starter.config["schedule"] = {"start": start, "end": data_end, "every": every}
    starter.config["churn"] = {"horizon_months": horizon} if every == "month" else {"horizon_steps": horizon}
    starter.comments["schedule"] = f"{len(labelled)} as_of dates have a full label window; the first leaves {warm_up} days of history."
    starter.comments["churn"] = (f"Churn within {horizon} {every}{'s' if horizon > 1 else ''} of each as_of: the longest "
                                 "horizon this history can train on with a purge gap between the slices.")
    if every == "week":
        starter.config["model"] = {"split": {"test_dates": test}}
        starter.comments["model"] = "Less history than a monthly schedule needs: two test dates."


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, day = [], start
    while day <= end:
        out.append(day)
        day = add_months(day, 1)
    return out


def _metrics(kinds: dict[str, list[str]], starter: Starter) -> None:
    """Drop the built-in metrics whose event kind has no event type; add one per event type."""
    present = set(kinds)
    drop = []
    for m in load_default_catalogue():
        wanted = {k for k in ("login", "session_minutes", "feature", "new_feature") if m.filter and f"'{k}'" in m.filter}
        if m.source == "events" and wanted and not wanted & present:
            drop.append(m.code)
    for m in load_default_catalogue().ordered():  # and what is computed from them
        if set(m.references) & set(drop):
            drop.append(m.code)
    add = starter.config.setdefault("metrics", {}).setdefault("add", [])
    own = [n for n, _ in starter.event_counts if n in kinds.get("feature", [])]  # logins etc. have built-in metrics
    for name in own[:TOP_EVENT_METRICS]:
        code = f"{_slug(name)}_30d"
        add.append({"code": code, "label": f"{name.replace('_', ' ').capitalize()} (30 days)", "source": "events",
                    "aggregation": "sum", "value": "quantity", "filter": f"event_type = {sql_str(name)}", "window_days": 30,
                    "format": "integer", "good_direction": "lower" if BAD.search(name) else "higher", "family": "usage_decline"})
    add.append({"code": "active_days_any_30d", "label": "Days with any activity (30 days)", "source": "events",
                "aggregation": "distinct_count", "value": "event_date", "window_days": 30, "format": "integer",
                "good_direction": "higher", "family": "usage_decline"})
    add.append({"code": "days_since_last_event", "label": "Days since any activity", "source": "events",
                "aggregation": "days_since_last", "format": "days", "good_direction": "lower", "family": "usage_decline",
                "missing_text": "no activity on record"})
    starter.config["metrics"]["drop"] = sorted(set(drop))
    starter.config["metrics"]["unusable"] = "drop"
    starter.comments["metrics"] = ("Built-in metrics whose event kind has no event type are dropped; one metric per event type "
                                   "is added in your own words. `healthscore metrics --config` lists what applies.")


def render(starter: Starter) -> str:
    """The config as commented YAML, in the order a reader needs it."""
    out = ["# Written by `healthscore init` from your tables; every key is described in docs/CONFIG.md.", ""]
    for line in starter.facts:
        out.append(f"# {line}")
    if starter.undecided:
        out.append("# NOT DECIDED (fix before building):")
        out += [f"#   - {u}" for u in starter.undecided]
    out.append("")
    for key in ("sources", "data_end", "schedule", "churn", "metrics", "model"):
        if key not in starter.config:
            continue
        if key in starter.comments:
            out.append(f"# {starter.comments[key]}")
        value = starter.config[key]
        flow = None if isinstance(value, dict) else False
        out.append(yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=flow, width=110).rstrip())
        out.append("")
    return "\n".join(out)


def write_starter(out: Path, accounts: Path, subscriptions: Path, events: Path, optional: dict[str, Path] | None = None) -> Starter:
    """Inspect the tables, write the commented config to `out` (validated by loading it), return
    what was decided and what was not."""
    from healthscore.config import load_config

    starter = inspect_tables(accounts, subscriptions, events, optional, base=out.parent)
    out.write_text(render(starter))
    if not starter.undecided:
        config: Config = load_config(out)
        config.catalogue()
    return starter
