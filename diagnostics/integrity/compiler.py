"""Integrity checks compiled to SQL, and the validation of user-written SQL.

Names of tables and columns only ever reach SQL through psycopg.sql.Identifier. The two
user-written parts, a predicate (a WHERE condition) and a query (one SELECT), are parsed with
PostgreSQL's own grammar (pglast, libpg_query) and must be a single read-only SELECT; what runs
is the parser's canonical re-rendering of what was validated, never the raw text, so a clever
string cannot smuggle in anything the parser did not see.
"""

from __future__ import annotations

import dataclasses
import re

from pglast import ast, parse_sql
from pglast.parser import ParseError
from pglast.stream import RawStream
from pglast.visitors import Visitor
from psycopg import sql

from diagnostics.services import DiagnosticsError

MAX_SQL_CHARS = 10_000
# A plain table or column name: letters, digits, _, $, space and hyphen (Prisma and Rails names
# pass; quotes, dots, semicolons, parentheses and comment markers do not).
_IDENT = re.compile(r"[\w$][\w$ \-]*")
# Functions a check may not call: they change settings (set_config could lift the timeouts),
# run SQL given as a string (query_to_xml, ts_stat), reach files, other servers or backends.
DENIED_FUNCTIONS = frozenset(
    {
        "set_config",
        "nextval",
        "setval",
        "query_to_xml",
        "query_to_xmlschema",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "cursor_to_xmlschema",
        "table_to_xml",
        "table_to_xmlschema",
        "table_to_xml_and_xmlschema",
        "schema_to_xml",
        "schema_to_xmlschema",
        "schema_to_xml_and_xmlschema",
        "database_to_xml",
        "database_to_xmlschema",
        "database_to_xml_and_xmlschema",
        "ts_stat",
        "txid_current",
    }
)
DENIED_PREFIXES = ("pg_", "lo_", "dblink", "binary_upgrade_")
ALLOWED_PG_FUNCTIONS = frozenset({"pg_typeof", "pg_column_size"})
_WRITE_NODES = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)


class IntegrityCheckError(DiagnosticsError):
    """An integrity check definition the rules refuse (400 with the field named)."""


def validate_identifier(value: str, *, field: str) -> str:
    """A table, schema or column name, or IntegrityCheckError naming the field."""
    value = (value or "").strip()
    if not value:
        raise IntegrityCheckError("A name is required.", field=field)
    if len(value.encode()) > 63:
        raise IntegrityCheckError(
            f"{value[:70]!r} is longer than PostgreSQL's 63-byte identifier limit.", field=field
        )
    if not _IDENT.fullmatch(value) or "--" in value:
        raise IntegrityCheckError(
            f"{value[:70]!r} is not a plain table or column name (letters, digits, _, $, space "
            "and hyphen only; give the schema in its own field).",
            field=field,
        )
    return value


class _Guard(Visitor):
    """Walks a parse tree and refuses anything that is not a plain read."""

    def __init__(self, field: str):
        super().__init__()
        self.field = field

    def visit(self, ancestors, node):
        if isinstance(node, _WRITE_NODES):
            raise IntegrityCheckError(
                "Only reads are allowed: this contains a data-modifying statement "
                f"({type(node).__name__.removesuffix('Stmt').upper()}).",
                field=self.field,
            )
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise IntegrityCheckError(
                    "SELECT INTO creates a table; only reads are allowed.", field=self.field
                )
            if node.lockingClause:
                raise IntegrityCheckError(
                    "FOR UPDATE / FOR SHARE lock rows; only plain reads are allowed.",
                    field=self.field,
                )
        if isinstance(node, ast.FuncCall):
            name = node.funcname[-1].sval.lower()
            denied = name in DENIED_FUNCTIONS or (
                name.startswith(DENIED_PREFIXES) and name not in ALLOWED_PG_FUNCTIONS
            )
            if denied:
                raise IntegrityCheckError(
                    f"The function {name}() is not allowed in an integrity check.",
                    field=self.field,
                )
        return None


def _parse_select(text: str, *, field: str) -> ast.SelectStmt:
    if len(text) > MAX_SQL_CHARS:
        raise IntegrityCheckError(f"At most {MAX_SQL_CHARS} characters are allowed.", field=field)
    if "\x00" in text:
        raise IntegrityCheckError("NUL characters are not allowed.", field=field)
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        raise IntegrityCheckError(f"Not valid SQL: {exc}", field=field) from None
    if len(statements) != 1:
        raise IntegrityCheckError(
            f"Exactly one statement is allowed; this has {len(statements)}.", field=field
        )
    statement = statements[0].stmt
    if not isinstance(statement, ast.SelectStmt):
        kind = type(statement).__name__.removesuffix("Stmt")
        raise IntegrityCheckError(
            f"Only a SELECT is allowed; this is {kind or 'another statement'}.", field=field
        )
    _Guard(field)(statement)
    return statement


def canonical_predicate(text: str, *, field: str = "predicate") -> str:
    """A WHERE condition, validated and re-rendered by the parser ('' for none)."""
    text = (text or "").strip()
    if not text:
        return ""
    # The newline keeps a trailing "--" comment from swallowing the closing parenthesis.
    wrapper = _parse_select(f"SELECT 1 WHERE ({text}\n)", field=field)
    # Anything the text added around the condition (a closing parenthesis followed by UNION,
    # GROUP BY, ORDER BY, LIMIT, WINDOW ...) shows up as another clause of the wrapper.
    extra = (
        wrapper.fromClause
        or wrapper.withClause
        or wrapper.groupClause
        or wrapper.havingClause
        or wrapper.windowClause
        or wrapper.sortClause
        or wrapper.limitCount
        or wrapper.limitOffset
        or wrapper.distinctClause
        or wrapper.valuesLists
        or (wrapper.op is not None and int(wrapper.op) != 0)
        or len(wrapper.targetList or ()) != 1
    )
    if extra or wrapper.whereClause is None:
        raise IntegrityCheckError(
            "A predicate is one condition (what follows WHERE), nothing more.", field=field
        )
    return RawStream()(wrapper.whereClause)


def canonical_query(text: str, *, field: str = "query") -> str:
    """One SELECT, validated and re-rendered by the parser."""
    text = (text or "").strip().rstrip(";").strip()
    if not text:
        raise IntegrityCheckError("A query is required.", field=field)
    return RawStream()(_parse_select(text, field=field))


# --- compiling checks ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Compiled:
    """What runs for a check: one statement, and how to read its rows.

    mode "rows": identifying columns of violating rows plus quell_total (count over all);
    mode "groups": duplicate groups (quell_rows, quell_keys) plus quell_groups and quell_rows_total;
    mode "count": one row with quell_total.
    """

    statement: sql.Composable
    mode: str
    sample_columns: tuple[str, ...] = ()

    def text(self) -> str:
        return self.statement.as_string(None)


def _table(schema: str, table: str) -> sql.Composable:
    return sql.Identifier(schema or "public", table)


def _col(table: str, column: str) -> sql.Composable:
    return sql.Identifier(table, column)


def _key_exprs(table: str, pk: list[str]) -> list[sql.Composable]:
    if pk:
        return [_col(table, c) for c in pk]
    # No primary key: the physical row address identifies the row for now (not for ever).
    return [sql.SQL("{}.ctid::text").format(sql.Identifier(table))]


def _where(parts: list[sql.Composable]) -> sql.Composable:
    if not parts:
        return sql.SQL("")
    return sql.SQL(" WHERE ") + sql.SQL(" AND ").join(parts)


def _predicate_part(predicate: str) -> list[sql.Composable]:
    # The canonical text from the parser, not the user's text; never passed through format().
    return [sql.SQL("(") + sql.SQL(predicate) + sql.SQL(")")] if predicate else []


def compile_check(check, *, pk: list[str], sample_limit: int) -> Compiled:
    """The statement for a check (a model instance or anything with the same attributes)."""
    kind = check.kind
    schema, table = check.schema_name or "public", check.table_name
    predicate = canonical_predicate(check.predicate)
    limit = sql.Literal(int(sample_limit))
    keys = _key_exprs(table, pk)
    key_names = tuple(pk) if pk else ("ctid",)
    key_order = sql.SQL(", ").join(keys)

    if kind == "business_rule" and not table:
        query = canonical_query(check.query)
        statement = (
            sql.SQL("SELECT quell_q.*, count(*) OVER () AS quell_total FROM (")
            + sql.SQL(query)
            + sql.SQL(") AS quell_q LIMIT {}").format(limit)
        )
        return Compiled(statement, "rows")

    source = _table(schema, table)
    if kind in ("row_count", "critical_count"):
        statement = sql.SQL("SELECT count(*) AS quell_total FROM {}").format(source) + _where(
            _predicate_part(predicate)
        )
        return Compiled(statement, "count")

    if kind == "orphans":
        parent = sql.Identifier(check.parent_schema or schema, check.parent_table)
        alias = "quell_parent" if table != "quell_parent" else "quell_parent_ref"
        not_null = [sql.SQL("{} IS NOT NULL").format(_col(table, c)) for c in check.columns]
        join = sql.SQL(" AND ").join(
            sql.SQL("{} = {}").format(_col(alias, p), _col(table, c))
            for c, p in zip(check.columns, check.parent_columns, strict=True)
        )
        missing = sql.SQL("NOT EXISTS (SELECT 1 FROM {} AS {} WHERE {})").format(
            parent, sql.Identifier(alias), join
        )
        statement = (
            sql.SQL("SELECT {}, count(*) OVER () AS quell_total FROM {}").format(
                sql.SQL(", ").join(keys), source
            )
            + _where([*not_null, missing, *_predicate_part(predicate)])
            + sql.SQL(" ORDER BY {} LIMIT {}").format(key_order, limit)
        )
        return Compiled(statement, "rows", key_names)

    if kind == "duplicates":
        if len(keys) == 1:
            key = keys[0]
        else:
            key = sql.SQL("jsonb_build_array({})").format(sql.SQL(", ").join(keys))
        not_null = [sql.SQL("{} IS NOT NULL").format(_col(table, c)) for c in check.columns]
        statement = (
            sql.SQL(
                "SELECT count(*) AS quell_rows, (array_agg({key} ORDER BY {key}))[1:10] AS "
                "quell_keys, count(*) OVER () AS quell_groups, "
                "sum(count(*)) OVER () AS quell_rows_total FROM {source}"
            ).format(key=key, source=source)
            + _where([*not_null, *_predicate_part(predicate)])
            + sql.SQL(" GROUP BY {} HAVING count(*) > 1").format(
                sql.SQL(", ").join(_col(table, c) for c in check.columns)
            )
            + sql.SQL(" ORDER BY count(*) DESC, 2 LIMIT {}").format(limit)
        )
        return Compiled(statement, "groups", ("rows", "keys"))

    if kind == "business_rule":
        statement = (
            sql.SQL("SELECT {}, count(*) OVER () AS quell_total FROM {}").format(
                sql.SQL(", ").join(keys), source
            )
            + _where(_predicate_part(predicate))
            + sql.SQL(" ORDER BY {} LIMIT {}").format(key_order, limit)
        )
        return Compiled(statement, "rows", key_names)

    raise IntegrityCheckError(f"Unknown kind {kind!r}.", field="kind")


def expected_for(check) -> dict:
    """What a check's count is held against."""
    if check.kind == "row_count":
        return {
            k: v for k, v in (("min", check.min_count), ("max", check.max_count)) if v is not None
        }
    if check.kind == "critical_count":
        out = {"min": check.min_count if check.min_count is not None else 1}
        if check.max_count is not None:
            out["max"] = check.max_count
        return out
    return {"max": check.max_count or 0}


def violates(count: int, expected: dict) -> bool:
    if "min" in expected and count < expected["min"]:
        return True
    return "max" in expected and count > expected["max"]
