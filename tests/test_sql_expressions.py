"""Metric SQL is data, not code: hostile fragments are refused before DuckDB sees them, and what
is accepted is re-rendered SQL that DuckDB runs."""

from __future__ import annotations

import duckdb
import pytest

from healthscore.sql_expressions import ALLOWED_FUNCTIONS, check_expression, referenced_columns

COLUMNS = ["event_type", "quantity", "amount", "priority", "x", "y", "event_date", "escalated", "note"]


@pytest.fixture()
def con():
    """An in-memory DuckDB with a small table holding every column in COLUMNS."""
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE events AS SELECT * FROM (VALUES
            ('api_call',   3, 10.0, 'high', 1.0,  2.0, DATE '2024-03-01', TRUE,  'report: q1'),
            ('report_run', 0, 20.0, 'low',  NULL, 0.0, DATE '2023-12-31', FALSE, 'it''s \\ fine'),
            ('b',         12, 30.0, NULL,   5.0,  NULL, DATE '2024-01-01', NULL, NULL)
        ) t(event_type, quantity, amount, priority, x, y, event_date, escalated, note)"""
    )
    yield con
    con.close()


def run(con, sql: str, kind: str) -> list:
    """Check a fragment, then splice the normalised text the way the metric SQL does."""
    checked = check_expression(sql, COLUMNS, kind=kind)
    if kind == "filter":
        return con.execute(f"SELECT count(*) FILTER (WHERE ({checked})) FROM events").fetchall()
    return con.execute(f"SELECT sum(CASE WHEN ({checked}) IS NULL THEN 0 ELSE 1 END), min(({checked})) FROM events").fetchall()


# --- accepted --------------------------------------------------------------------------------

LEGIT = [
    ("event_type = 'api_call'", "filter", "event_type = 'api_call'", 1),
    ("event_type IN ('a', 'b') AND quantity > 0", "filter", "event_type IN ('a', 'b') AND quantity > 0", 1),
    ("lower(event_type) LIKE 'report%'", "filter", "LOWER(event_type) LIKE 'report%'", 1),
    ("DATE '2024-01-01' <= event_date", "filter", "CAST('2024-01-01' AS DATE) <= event_date", 2),
    ("quantity BETWEEN 1 AND 10", "filter", "quantity BETWEEN 1 AND 10", 1),
    ("escalated", "filter", "escalated", 1),  # a boolean column, as the built-in catalogue uses
    ("x IS NOT NULL AND NOT coalesce(escalated, false)", "filter", "NOT x IS NULL AND NOT COALESCE(escalated, FALSE)", 1),
    ("event_type NOT IN ('b')", "filter", "NOT event_type IN ('b')", 2),
    ("starts_with(event_type, 'api') OR regexp_matches(note, '^rep')", "filter",
     "STARTS_WITH(event_type, 'api') OR REGEXP_MATCHES(note, '^rep')", 1),
    ("event_date >= DATE '2024-03-01' - INTERVAL 30 DAY", "filter",
     "event_date >= CAST('2024-03-01' AS DATE) - INTERVAL '30' DAY", 1),
    ("CAST(quantity AS BOOLEAN)", "filter", "CAST(quantity AS BOOLEAN)", 2),
    ("note = 'it''s \\ fine'", "filter", "note = 'it''s \\ fine'", 1),  # quotes and backslashes stay data
]  # fmt: skip

LEGIT_VALUES = [
    ("quantity", "quantity"),
    ("amount * 12", "amount * 12"),
    ("CASE WHEN priority = 'high' THEN 1 ELSE 0 END", "CASE WHEN priority = 'high' THEN 1 ELSE 0 END"),
    ("coalesce(x, 0) / nullif(y, 0)", "COALESCE(x, 0) / NULLIF(y, 0)"),
    ("greatest(date_diff('day', event_date, DATE '2024-06-01'), 0)",
     "GREATEST(DATE_DIFF('DAY', event_date, CAST('2024-06-01' AS DATE)), 0)"),
    ("CAST(escalated AS DOUBLE)", "CAST(escalated AS DOUBLE)"),
    ("event_type || ':' || note", "event_type || ':' || note"),  # building SQL-looking text is just data
    ("'; DROP TABLE events; --'", "'; DROP TABLE events; --'"),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "kind", "normalised", "rows"), LEGIT)
def test_legitimate_filters_are_normalised_and_run_in_duckdb(con, sql, kind, normalised, rows):
    assert check_expression(sql, COLUMNS, kind=kind) == normalised
    assert run(con, sql, kind) == [(rows,)]


@pytest.mark.parametrize(("sql", "normalised"), LEGIT_VALUES)
def test_legitimate_values_are_normalised_and_run_in_duckdb(con, sql, normalised):
    assert check_expression(sql, COLUMNS, kind="value") == normalised
    run(con, sql, "value")
    assert con.execute("SELECT count(*) FROM events").fetchone() == (3,)


def test_normalising_does_not_change_the_result(con):
    for sql, _ in LEGIT_VALUES:
        raw = con.execute(f"SELECT list(({sql}) ORDER BY event_type) FROM events").fetchone()
        checked = check_expression(sql, COLUMNS, kind="value")
        assert con.execute(f"SELECT list(({checked}) ORDER BY event_type) FROM events").fetchone() == raw, sql


# One sample per allowed function name, each run in DuckDB.
FUNCTION_SAMPLES = {
    "abs": "abs(x - 3)", "round": "round(amount / 3, 2)", "floor": "floor(amount / 3)", "ceil": "ceil(amount / 3)",
    "sqrt": "sqrt(amount)", "ln": "ln(amount)", "log": "log(amount)", "log10": "log10(amount)", "exp": "exp(x)",
    "power": "power(x, 2)", "pow": "pow(x, 2)", "sign": "sign(x)", "greatest": "greatest(x, y)",
    "least": "least(x, y)", "coalesce": "coalesce(x, y, 0)", "nullif": "nullif(quantity, 0)",
    "ifnull": "ifnull(x, 0)", "if": "if(quantity > 1, 'many', 'few')", "lower": "lower(event_type)",
    "upper": "upper(event_type)", "trim": "trim(note)", "length": "length(note)", "substr": "substr(note, 1, 3)",
    "substring": "substring(note, 2)", "starts_with": "starts_with(note, 'rep')", "ends_with": "ends_with(note, 'q1')",
    "contains": "contains(note, ':')", "regexp_matches": "regexp_matches(note, '^r')", "strpos": "strpos(note, ':')",
    "replace": "replace(note, ':', '-')", "concat": "concat(event_type, '/', note)",
    "date_diff": "date_diff('day', event_date, DATE '2024-06-01')", "datediff": "datediff('month', event_date, DATE '2024-06-01')",
    "date_part": "date_part('year', event_date)", "extract": "extract(month FROM event_date)",
    "date_trunc": "date_trunc('month', event_date)", "year": "year(event_date)", "month": "month(event_date)",
    "day": "day(event_date)", "epoch": "epoch(event_date)",
}  # fmt: skip


def test_every_allowed_function_is_accepted_and_runs(con):
    assert set(FUNCTION_SAMPLES) == set(ALLOWED_FUNCTIONS)
    for name, sql in FUNCTION_SAMPLES.items():
        checked = check_expression(sql, COLUMNS, kind="value")
        con.execute(f"SELECT ({checked}) FROM events").fetchall()
        assert check_expression(checked, COLUMNS, kind="value") == checked, name  # rendering is a fixed point


def test_column_names_match_case_insensitively_and_render_as_given():
    assert check_expression('"QUANTITY" > 1 AND Event_Type = \'a\'', COLUMNS, kind="filter") == (
        "quantity > 1 AND event_type = 'a'"
    )
    assert check_expression("total > 1", ["Total"], kind="filter") == "Total > 1"


def test_comments_are_dropped_from_what_runs():
    assert check_expression("x = 1 /* ; COPY (SELECT 1) TO 'p.csv' */", COLUMNS, kind="filter") == "x = 1"
    assert check_expression("x = 1 -- ; COPY (SELECT 1) TO 'p.csv'", COLUMNS, kind="filter") == "x = 1"
    # a line comment holding `*/` must not escape when re-rendered as a block comment
    assert check_expression("x -- */ ; COPY (SELECT 1) TO 'p.csv'\n", COLUMNS, kind="value") == "x"


def test_expressions_over_metric_codes():
    codes = ["logins_30d", "active_users_30d"]
    sql = "logins_30d / nullif(active_users_30d, 0)"
    assert check_expression(sql, codes, kind="expression") == "logins_30d / NULLIF(active_users_30d, 0)"
    with pytest.raises(ValueError, match="unknown column 'logins_31d'"):
        check_expression("logins_31d / 2", codes, kind="expression")


def test_built_in_catalogue_fragments_pass():
    from healthscore.catalogue import load_default_catalogue
    from healthscore.schema import SOURCE_SCHEMAS

    checked = 0
    for m in load_default_catalogue():
        if not m.source:
            continue
        columns = [c.name for c in SOURCE_SCHEMAS[m.source].columns] + ["as_of", "event_kind"]
        for kind in ("filter", "value"):
            if sql := getattr(m, kind):
                check_expression(sql, columns, kind=kind)
                checked += 1
    assert checked > 30


# --- refused ---------------------------------------------------------------------------------

HOSTILE = [
    ("read_csv('/etc/passwd')", "function read_csv is not allowed"),
    ("read_text('/etc/passwd')", "function read_text is not allowed"),
    ("read_parquet('x.parquet') IS NULL", "function read_parquet is not allowed"),
    ("glob('/home/*') IS NULL", "function glob is not allowed"),
    ("'x' || read_csv('/etc/passwd')", "function read_csv is not allowed"),
    ("1=1; COPY (SELECT 1) TO 'pwned.csv'", "a single expression is expected, found 2 statements"),
    ("x = 1 --\n; COPY (SELECT 1) TO 'pwned.csv'", "a single expression is expected, found 2 statements"),
    ("; DROP TABLE events", "DROP statements are not allowed"),
    ("COPY (SELECT 1) TO 'pwned.csv'", "COPY statements are not allowed"),
    ("PRAGMA database_list", "PRAGMA statements are not allowed"),
    ("ATTACH 'other.db'", "ATTACH statements are not allowed"),
    ("INSTALL httpfs", "INSTALL statements are not allowed"),
    ("LOAD httpfs", "LOAD statements are not allowed"),
    ("SET threads = 1", "SET statements are not allowed"),
    ("SELECT 1", "SELECT statements are not allowed"),
    ("quantity IN (SELECT quantity FROM events)", "subqueries are not allowed"),
    ("EXISTS (SELECT 1)", "subqueries are not allowed"),
    ("quantity = ANY (SELECT 1)", "subqueries are not allowed"),
    ("(SELECT max(quantity) FROM events) > 1", "subqueries are not allowed"),
    ("getenv('HOME') = 'x'", "function getenv is not allowed"),
    ("current_setting('home_directory') = 'x'", "function current_setting is not allowed"),
    ("now() > event_date", "function now is not allowed"),
    ("sum(quantity) OVER () > 1", "window functions are not allowed"),
    ("count(*) > 1", "aggregate function count is not allowed"),
    ("sum(quantity) > 1", "aggregate function sum is not allowed"),
    ("*", "* is not allowed"),
    ("events.* IS NULL", "* is not allowed"),
    ("events.quantity > 1", "qualified column 'events.quantity' is not allowed"),
    ("quantty > 1", "unknown column 'quantty' (columns: event_type, quantity,"),
    ("frobnicate(quantity) > 1", "function frobnicate is not allowed (allowed: abs,"),
    ("", "the expression is empty"),
    ("   -- just a comment", "the expression is empty"),
    ("quantity > 1 AS q", "aliases are not allowed"),
    ("quantity > ?", "parameters are not allowed"),
    ("quantity > $$1$$", "only plain '...' string literals are allowed"),
    ("extract(\"year; COPY (SELECT 1) TO 'p.csv'\" FROM event_date) > 1", "is not a date part"),
    ("CAST(note AS BLOB) IS NULL", "cast to BLOB is not allowed"),
    ("quantity IN (1, x)", "IN takes a list of literal values, not 'x'"),
    ("event_type = 'api_call", "cannot parse"),
    ("quantity >", "cannot parse"),
    ("(" * 80 + "x" + ")" * 80 + " > 1", "nested too deeply"),
]


@pytest.mark.parametrize(("sql", "message"), HOSTILE)
@pytest.mark.parametrize("kind", ["filter", "value"])
def test_hostile_fragments_are_refused_with_one_clean_line(sql, message, kind):
    with pytest.raises(ValueError) as info:
        check_expression(sql, COLUMNS, kind=kind)
    text = str(info.value)
    assert message in text
    assert "\n" not in text and "\x1b" not in text  # one line, no SQLGlot highlighting
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)  # no chained traceback


@pytest.mark.parametrize("sql", ["amount * 12", "coalesce(x, 0)", "CASE WHEN escalated THEN 1 END", "'yes'"])
def test_a_filter_must_be_a_condition(sql):
    with pytest.raises(ValueError, match="a filter must be a true/false condition"):
        check_expression(sql, COLUMNS, kind="filter")


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        check_expression("x", COLUMNS, kind="where")  # type: ignore[arg-type]


def test_refused_input_never_reaches_duckdb(con, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    attack = "x = 1; COPY (SELECT 1) TO 'pwned.csv'"
    # The threat is real: spliced raw, DuckDB runs the second statement and writes the file.
    con.execute(f"SELECT count(*) FROM events WHERE {attack}")
    assert (tmp_path / "pwned.csv").exists()
    (tmp_path / "pwned.csv").unlink()
    # Checked first, it never gets that far.
    for sql in (attack, "x = 1 --\n; COPY (SELECT 1) TO 'pwned.csv'", "; COPY (SELECT 1) TO 'pwned.csv'"):
        with pytest.raises(ValueError):
            run(con, sql, "filter")
    # Hidden in a comment, it is accepted, but the comment is not in what runs.
    run(con, "x = 1 -- ; COPY (SELECT 1) TO 'pwned.csv'", "filter")
    run(con, "x = 1 /* ; COPY (SELECT 1) TO 'pwned.csv' */", "filter")
    assert list(tmp_path.iterdir()) == []


def test_file_reading_never_reaches_duckdb(con):
    assert con.execute("SELECT count(*) FROM read_csv('/etc/passwd', header = false, sep = ':')").fetchone()[0] > 0
    with pytest.raises(ValueError, match="read_csv"):
        run(con, "read_csv('/etc/passwd', header = false, sep = ':') IS NOT NULL", "filter")


# --- referenced_columns -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "columns"),
    [
        ("event_type = 'api_call' AND quantity > 0", {"event_type", "quantity"}),
        ("\"Quantity\" * 12", {"quantity"}),
        ("date_diff('minute', opened_at, closed_at) / 60.0", {"opened_at", "closed_at"}),
        ("extract(year FROM event_date) = 2024", {"event_date"}),
        ("note = 'quantity'", {"note"}),  # string contents are not columns
        ("lower(Event_Type) LIKE 'x%'", {"event_type"}),
        ("1 + 1", set()),
    ],
)
def test_referenced_columns(sql, columns):
    assert referenced_columns(sql) == columns


def test_referenced_columns_needs_one_statement():
    with pytest.raises(ValueError, match="found 2 statements"):
        referenced_columns("x = 1; COPY (SELECT 1) TO 'pwned.csv'")
    with pytest.raises(ValueError, match="cannot parse"):
        referenced_columns("x = 'open")
