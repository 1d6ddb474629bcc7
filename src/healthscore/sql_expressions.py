"""Metric SQL is data, not code: checking the SQL fragments users write in the catalogue.

A metric's `filter`, `value` or `expression` is spliced into the DuckDB SQL that builds the
metrics. Before that, the fragment is parsed with SQLGlot (DuckDB dialect) and accepted only if
it is one scalar expression over known column names, built from an allow-list of operators and
pure scalar functions. What is spliced is the fragment re-rendered from the checked tree, never
the user's raw text, so comments and anything SQLGlot did not read as part of the expression
cannot reach DuckDB.

Refused: more than one statement, statements (COPY, PRAGMA, ATTACH, SET, ...), subqueries,
table functions (read_csv, read_text, glob, ...), aggregates and window functions (aggregating is
the metric's `aggregation`), any function not on the allow-list (getenv, current_setting, now,
random, ...), `*`, table-qualified columns, unknown columns, aliases and parameters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

__all__ = ["ALLOWED_FUNCTIONS", "check_expression", "referenced_columns", "string_literals"]

Kind = Literal["filter", "value", "expression"]
_KINDS = ("filter", "value", "expression")
_DIALECT = "duckdb"


def _classes(*names: str) -> tuple[type[exp.Expression], ...]:
    """The SQLGlot node classes of these names that this SQLGlot version has."""
    return tuple(getattr(exp, n) for n in names if hasattr(exp, n))


# Function names as users write them; the message on a refused function lists these.
ALLOWED_FUNCTIONS: tuple[str, ...] = tuple(sorted({
    "abs", "round", "floor", "ceil", "sqrt", "ln", "log", "log10", "exp", "power", "pow", "sign",
    "greatest", "least", "coalesce", "nullif", "ifnull", "if",
    "lower", "upper", "trim", "length", "substr", "substring", "starts_with", "ends_with", "contains",
    "regexp_matches", "strpos", "replace", "concat",
    "date_diff", "datediff", "date_part", "extract", "date_trunc", "year", "month", "day", "epoch",
}))  # fmt: skip

# The node classes SQLGlot parses those functions into (some also take a synonym, e.g. `nvl` for
# coalesce or `ceiling` for ceil: the same pure function, rendered under the allowed name).
_FUNCTION_NODES = _classes(
    "Abs", "Round", "Floor", "Ceil", "Sqrt", "Ln", "Log", "Exp", "Pow", "Sign",
    "Greatest", "Least", "Coalesce", "Nullif", "If",
    "Lower", "Upper", "Trim", "Length", "Substring", "StartsWith", "EndsWith", "Contains",
    "RegexpLike", "StrPosition", "Replace", "Concat",
    "DateDiff", "Extract", "TimestampTrunc", "DateTrunc", "Year", "Month", "Day", "TimeToUnix",
)  # fmt: skip
# Functions SQLGlot does not know (it returns them as exp.Anonymous): allowed by name only.
_ANONYMOUS_OK = {"date_part"}

_COMPARISONS = _classes("EQ", "NEQ", "GT", "GTE", "LT", "LTE", "NullSafeEQ", "NullSafeNEQ")
_PREDICATES = _classes("In", "Between", "Is", "Like", "ILike", "Escape")
_OPERATORS = _classes("And", "Or", "Not", "Neg", "Add", "Sub", "Mul", "Div", "Mod", "IntDiv", "DPipe", "Paren")
_LITERALS = _classes("Literal", "Boolean", "Null", "Interval")
_OTHER = _classes("Column", "Identifier", "Case", "Cast", "DataType", "DataTypeParam", "Var")
_ALLOWED_NODES = _COMPARISONS + _PREDICATES + _OPERATORS + _LITERALS + _OTHER + _FUNCTION_NODES + (exp.Anonymous,)

# Top nodes that make a filter a true/false condition (a bare column is a boolean column).
_CONDITION_NODES = (
    _COMPARISONS + _PREDICATES
    + _classes("And", "Or", "Not", "Boolean", "Column", "StartsWith", "EndsWith", "Contains", "RegexpLike")
)  # fmt: skip

_T = exp.DataType.Type
_CAST_TYPES = {
    getattr(_T, n)
    for n in (
        "TINYINT", "SMALLINT", "INT", "BIGINT", "INT128", "UTINYINT", "USMALLINT", "UINT", "UBIGINT",
        "UINT128", "FLOAT", "DOUBLE", "DECIMAL", "TEXT", "VARCHAR", "CHAR", "DATE", "TIMESTAMP", "TIMESTAMPNTZ",
        "TIMESTAMPTZ", "BOOLEAN",
    )
    if hasattr(_T, n)
}  # fmt: skip
_CAST_TYPES_TEXT = "numeric types, varchar, date, timestamp, boolean"

# Date parts SQLGlot keeps as a bare word (exp.Var) in INTERVAL, EXTRACT, date_diff, date_trunc.
_DATE_PARTS = {
    p + s
    for p in (
        "year", "quarter", "month", "week", "day", "hour", "minute", "second", "millisecond",
        "microsecond", "decade", "century", "millennium",
    )
    for s in ("", "s")
} | {"dow", "doy", "dayofweek", "dayofyear", "dayofmonth", "isodow", "isoyear", "yearweek", "weekday", "epoch"}  # fmt: skip
_DATE_PART_PARENTS = _classes("Interval", "Extract", "DateDiff", "TimestampTrunc", "DateTrunc")

_SUBQUERY_NODES = _classes("Query", "Subquery", "Exists", "Any", "All")
_ODD_STRINGS = _classes("RawString", "ByteString", "HexString", "BitString", "National", "UnicodeString")
_STATEMENT_KEYS = {
    "copy", "drop", "pragma", "set", "attach", "detach", "install", "create", "insert", "update",
    "delete", "merge", "alter", "use", "describe", "summarize", "transaction", "commit", "rollback",
    "command", "values", "show", "export", "load", "analyze", "refresh", "truncatetable",
}  # fmt: skip


def check_expression(sql: str, columns: Iterable[str], *, kind: Kind) -> str:
    """Validate a metric SQL fragment and return it re-rendered from its parse tree.

    Parameters
    ----------
    sql
        The fragment as written in the catalogue (DuckDB SQL).
    columns
        The names it may refer to: the source's columns for a `filter` or `value`, the input metric
        codes for an `expression`. Matched case-insensitively.
    kind
        ``"filter"`` must be a true/false condition (comparison, AND/OR/NOT, IN, BETWEEN, IS,
        LIKE/ILIKE, a boolean literal, column or function); ``"value"`` and ``"expression"`` may be
        any allowed scalar expression.

    Returns
    -------
    str
        The expression rendered in the DuckDB dialect from the checked tree, without comments and
        with column names spelled as in `columns`. Splice this, not `sql`.

    Raises
    ------
    ValueError
        One line naming the offending part; the caller prefixes the metric code.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}")
    known = {c.lower(): c for c in columns}
    try:
        tree = _parse(sql)
        _validate(tree, known)
        if kind == "filter" and not _is_condition(tree):
            raise ValueError(f"a filter must be a true/false condition (e.g. a comparison), not {_snippet(tree)!r}")
        rendered = _render(tree, known)
        # What runs is the rendering: it must read back as the same checked expression.
        again = _parse(rendered)
        _validate(again, known)
        if _render(again, known) != rendered or (kind == "filter" and not _is_condition(again)):
            raise ValueError(f"{sql!r} does not render to stable SQL; write it more plainly")
    except RecursionError:
        raise ValueError("the expression is nested too deeply") from None
    return rendered


def referenced_columns(sql: str) -> set[str]:
    """The column names a fragment refers to, lower-cased as written.

    Parameters
    ----------
    sql
        A metric SQL fragment.

    Returns
    -------
    set of str
        Unqualified names of the columns it mentions; function names, date parts and string
        contents are not columns.

    Raises
    ------
    ValueError
        If the fragment does not parse as a single statement.
    """
    try:
        tree = _parse(sql)
    except RecursionError:
        raise ValueError("the expression is nested too deeply") from None
    return {c.name.lower() for c in tree.find_all(exp.Column) if not isinstance(c.this, exp.Star) and c.name}


def _parse(sql: str) -> exp.Expression:
    if not isinstance(sql, str):
        raise ValueError(f"SQL must be text, not {type(sql).__name__}")
    if not sql.strip():
        raise ValueError("the expression is empty")
    try:
        statements = [s for s in sqlglot.parse(sql, read=_DIALECT) if s is not None]
    except ParseError as e:
        raise ValueError(f"cannot parse {sql!r}: {_parse_error(e)}") from None
    except TokenError:
        why = "unterminated string, quoted name or comment, or a stray character"
        raise ValueError(f"cannot parse {sql!r}: {why}") from None
    if not statements:
        raise ValueError("the expression is empty")
    if len(statements) > 1:
        raise ValueError(f"a single expression is expected, found {len(statements)} statements")
    return statements[0]


def _parse_error(e: ParseError) -> str:
    first = e.errors[0] if e.errors else {}
    text = first.get("description") or str(e).splitlines()[0]
    if m := re.search(r"missing for <class '[\w.]*?(\w+)'>", text):
        text = f"incomplete {m.group(1).lower()}"
    where = f" at line {first['line']}, column {first['col']}" if first.get("line") and first.get("col") else ""
    return f"{text}{where}"


def _validate(tree: exp.Expression, known: dict[str, str]) -> None:
    """Raise ValueError at the first node (top down) that is not allowed."""
    for node in tree.walk(bfs=True):
        parent = node.parent
        if node is tree and isinstance(node, exp.Query):
            raise ValueError("SELECT statements are not allowed: a single expression is expected")
        if isinstance(node, _SUBQUERY_NODES) or (isinstance(node, exp.In) and node.args.get("query")):
            raise ValueError("subqueries are not allowed")
        if isinstance(node, exp.Window):
            raise ValueError(f"window functions are not allowed ({_snippet(node)!r})")
        if isinstance(node, exp.AggFunc):
            raise ValueError(
                f"aggregate function {_func_name(node)} is not allowed: the metric's `aggregation` aggregates"
            )
        if isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star)):
            raise ValueError("* is not allowed: name the column")
        if node is tree and node.key in _STATEMENT_KEYS:
            word = node.name.split()[0] if isinstance(node, exp.Command) and node.name else node.key
            raise ValueError(f"{word.upper()} statements are not allowed: a single expression is expected")
        if isinstance(node, exp.Alias):
            raise ValueError(f"aliases are not allowed ({_snippet(node)!r})")
        if isinstance(node, _ODD_STRINGS):
            raise ValueError(f"only plain '...' string literals are allowed, not {_snippet(node)!r}")
        if isinstance(node, exp.Placeholder):
            raise ValueError("parameters are not allowed")
        if isinstance(node, exp.Anonymous):
            if node.name.lower() not in _ANONYMOUS_OK:
                raise _function_error(node.name.lower())
            continue
        if isinstance(node, exp.Func) and not isinstance(node, _ALLOWED_NODES):
            raise _function_error(_func_name(node))
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(f"{_snippet(node)!r} is not allowed")
        # Nodes allowed only in some places or shapes.
        if isinstance(node, exp.Column):
            if node.table or node.args.get("db") or node.args.get("catalog"):
                raise ValueError(f"qualified column {_snippet(node)!r} is not allowed: write the bare column name")
            if not isinstance(node.this, exp.Identifier):
                raise ValueError(f"{_snippet(node)!r} is not allowed")
            if node.name.lower() not in known:
                raise ValueError(f"unknown column {node.name!r} (columns: {', '.join(known.values()) or 'none'})")
        elif isinstance(node, exp.Identifier):
            if not isinstance(parent, exp.Column):
                raise ValueError(f"{_snippet(node)!r} is not allowed here")
        elif isinstance(node, exp.Var):
            if not isinstance(parent, _DATE_PART_PARENTS) or node.name.lower() not in _DATE_PARTS:
                raise ValueError(f"{node.name!r} is not a date part (e.g. day, month, year)")
        elif isinstance(node, exp.DataType):
            if (
                not isinstance(parent, exp.Cast)
                or node.this not in _CAST_TYPES
                or node.args.get("nested")
                or any(not isinstance(p, exp.DataTypeParam) for p in node.expressions)
            ):
                raise ValueError(f"cast to {_snippet(node)} is not allowed (allowed: {_CAST_TYPES_TEXT})")
        elif isinstance(node, exp.DataTypeParam):
            if not isinstance(parent, exp.DataType) or not isinstance(node.this, exp.Literal):
                raise ValueError(f"{_snippet(node)!r} is not allowed")
        elif isinstance(node, exp.In):
            if node.args.get("unnest") or node.args.get("field") or not node.expressions:
                raise ValueError(f"IN takes a list of literal values, not {_snippet(node)!r}")
            for item in node.expressions:
                if not _is_constant(item):
                    raise ValueError(f"IN takes a list of literal values, not {_snippet(item)!r}")
        elif isinstance(node, exp.Is):
            if not isinstance(node.expression, (exp.Null, exp.Boolean)):
                raise ValueError(f"IS compares with NULL, TRUE or FALSE, not {_snippet(node.expression)!r}")
        elif isinstance(node, exp.Interval):
            if not isinstance(node.this, exp.Literal):
                raise ValueError(f"INTERVAL takes a literal amount (e.g. INTERVAL 30 DAY), not {_snippet(node)!r}")


def _is_constant(node: exp.Expression) -> bool:
    while isinstance(node, (exp.Paren, exp.Neg)):
        node = node.this
    if isinstance(node, exp.Cast):
        node = node.this
    return isinstance(node, (exp.Literal, exp.Boolean, exp.Null))


def _is_condition(node: exp.Expression) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Cast):
        return node.to.this == _T.BOOLEAN
    return isinstance(node, _CONDITION_NODES)


def _render(tree: exp.Expression, known: dict[str, str]) -> str:
    tree = tree.copy()
    for col in tree.find_all(exp.Column):
        col.set("this", exp.to_identifier(known[col.name.lower()]))
    return tree.sql(dialect=_DIALECT, comments=False)


def _func_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    try:
        return node.sql_name().lower()
    except Exception:  # noqa: BLE001 - only for the message
        return node.key


def _function_error(name: str) -> ValueError:
    return ValueError(f"function {name} is not allowed (allowed: {', '.join(ALLOWED_FUNCTIONS)})")


def _snippet(node: exp.Expression, limit: int = 60) -> str:
    try:
        text = node.sql(dialect=_DIALECT, comments=False)
    except Exception:  # noqa: BLE001 - only for the message
        text = node.key
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def string_literals(sql: str) -> list[str]:
    """The '...' string literals of a fragment, in order (what a filter compares columns with)."""
    return [lit.this for lit in _parse(sql).find_all(exp.Literal) if lit.is_string]
