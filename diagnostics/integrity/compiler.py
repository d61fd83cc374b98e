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
# What a check's SQL may use is an allow-list checked on the parse tree: anything not named here
# is refused. A deny-list cannot keep up: ts_rewrite(tsquery, text), crosstab(text), xpath_table
# and the *_to_xml functions all run SQL given as text, and through them pg_sleep or pg_read_file.
# Function names match case-insensitively, unqualified or qualified with pg_catalog; any other
# schema is refused (an extension's or a user's function can do anything).
_FUNCTION_GROUPS = {
    "comparison": "num_nulls num_nonnulls",
    "string": """lower upper initcap length char_length character_length octet_length bit_length
        btrim ltrim rtrim trim substring substr position strpos replace translate concat
        concat_ws left right lpad rpad split_part starts_with reverse repeat overlay ascii chr
        md5 regexp_replace regexp_match regexp_matches regexp_like regexp_count regexp_substr
        regexp_instr similar_to_escape like_escape normalize is_normalized to_char to_number
        string_to_array array_to_string""",
    "date/time": """now clock_timestamp statement_timestamp transaction_timestamp date_trunc
        date_part extract date_bin age make_date make_time make_timestamp make_timestamptz
        make_interval justify_days justify_hours justify_interval isfinite timezone overlaps
        to_date to_timestamp""",
    "math": """abs ceil ceiling floor round trunc mod power pow sqrt cbrt sign div exp ln log
        log10 width_bucket gcd lcm""",
    "aggregate/window": """count sum avg min max bool_and bool_or every array_agg string_agg
        stddev stddev_pop stddev_samp variance var_pop var_samp percentile_cont percentile_disc
        mode row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value
        last_value nth_value""",
    "array/JSON": """array_length array_lower array_upper array_position array_positions
        array_remove array_append array_cat cardinality unnest generate_series json_typeof
        jsonb_typeof json_array_length jsonb_array_length json_extract_path
        jsonb_extract_path json_extract_path_text jsonb_extract_path_text json_build_array
        jsonb_build_array json_build_object jsonb_build_object to_json to_jsonb
        jsonb_array_elements jsonb_array_elements_text jsonb_object_keys jsonb_strip_nulls
        json_agg jsonb_agg""",
    "about a value": "pg_typeof pg_column_size",
}
ALLOWED_FUNCTIONS = frozenset(name for group in _FUNCTION_GROUPS.values() for name in group.split())


def _words(text: str) -> list[str]:
    return text.split()


# Operators: comparison, arithmetic, concatenation, pattern matching (LIKE is ~~, SIMILAR TO and
# regular expressions ~), arrays and JSON containment/access, and the BETWEEN forms.
ALLOWED_OPERATORS = frozenset(
    _words(
        """= <> != < > <= >= + - * / % ^ |/ ||/ @ || ~~ !~~ ~~* !~~* ~ !~ ~* !~* @> <@ && -> ->> #>
    #>> ? ?| ?&"""
    )
) | {"BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC", "NOT BETWEEN SYMMETRIC"}
# Casts only to plain value types: not to reg* (regclass, regproc ... look up and expose the
# catalog), xml, tsquery, pg_lsn and the like.
ALLOWED_CAST_TYPES = frozenset(
    _words(
        """numeric decimal int int2 int4 int8 integer smallint bigint float4 float8 real float
    double text varchar char bpchar character date time timetz timestamp timestamptz interval
    bool boolean uuid json jsonb bytea inet cidr macaddr citext"""
    )
)
# Parse-tree nodes a read may consist of; anything else (XMLTABLE, TABLESAMPLE, parameters,
# JSON_TABLE, ...) is refused by name.
_ALLOWED_NODES = tuple(
    getattr(ast, name)
    for name in _words(
        """SelectStmt ResTarget ColumnRef A_Const A_Expr BoolExpr FuncCall TypeCast
        TypeName NullTest BooleanTest CaseExpr CaseWhen CoalesceExpr MinMaxExpr NullIfExpr
        SQLValueFunction SubLink RangeVar RangeSubselect RangeFunction JoinExpr Alias SortBy
        WindowDef A_Star A_Indirection A_Indices A_ArrayExpr RowExpr CollateClause WithClause
        CommonTableExpr GroupingSet String Integer Float Boolean BitString"""
    )
    if hasattr(ast, name)
)
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast"})
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


def validate_user_schema(value: str, *, field: str) -> str:
    """A schema of the target's own tables: not a system catalog (pg_catalog, pg_toast, ...)."""
    value = validate_identifier(value, field=field)
    if value.lower() in SYSTEM_SCHEMAS or value.lower().startswith("pg_"):
        raise IntegrityCheckError(
            f"{value} is a system schema; integrity checks read your own tables only.",
            field=field,
        )
    return value


class _Guard(Visitor):
    """Walks a parse tree and refuses anything that is not a plain read."""

    def __init__(self, field: str):
        super().__init__()
        self.field = field
        self.nodes: list = []

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
        self.nodes.append(node)
        return None

    def check(self, statement) -> None:
        """Walk the tree, then refuse the first offence, most telling first: a function by
        name rather than the column list its call needed."""
        self(statement)
        checks = (
            (ast.FuncCall, lambda n: self._check_function(n.funcname)),
            (ast.A_Expr, lambda n: self._check_operator(n.name)),
            (ast.TypeCast, lambda n: self._check_cast(n.typeName)),
            (ast.RangeVar, self._check_relation),
        )
        for node_type, check in checks:
            for node in self.nodes:
                if isinstance(node, node_type):
                    check(node)
        for node in self.nodes:
            if not isinstance(node, _ALLOWED_NODES):
                raise IntegrityCheckError(
                    f"{type(node).__name__} is not allowed in an integrity check (plain reads "
                    "of tables, with comparisons, string, date/time, math and aggregate "
                    "functions).",
                    field=self.field,
                )

    def _qualified(self, names, what: str) -> str:
        """The object's name, lower-cased; refused when qualified with a schema other than
        pg_catalog."""
        parts = [n.sval for n in names]
        name = parts[-1].lower()
        schemas = [p.lower() for p in parts[:-1]]
        if schemas and schemas != ["pg_catalog"]:
            raise IntegrityCheckError(
                f"The {what} {'.'.join(parts)} is not allowed in an integrity check: only "
                "built-in (pg_catalog) ones are.",
                field=self.field,
            )
        return name

    def _check_function(self, names) -> None:
        name = self._qualified(names, "function")
        if name not in ALLOWED_FUNCTIONS:
            raise IntegrityCheckError(
                f"The function {name}() is not allowed in an integrity check (allowed: "
                "comparison, string, date/time, math, aggregate, array and JSON functions; see "
                "docs/integrity.md).",
                field=self.field,
            )

    def _check_operator(self, names) -> None:
        name = self._qualified(names, "operator")
        if name.upper() not in ALLOWED_OPERATORS:
            raise IntegrityCheckError(
                f"The operator {name} is not allowed in an integrity check.", field=self.field
            )

    def _check_cast(self, type_name) -> None:
        name = self._qualified(type_name.names, "type")
        if name not in ALLOWED_CAST_TYPES:
            raise IntegrityCheckError(
                f"A cast to {name} is not allowed in an integrity check (only to plain types: "
                "numeric, text, date, timestamp, boolean, uuid, json ...).",
                field=self.field,
            )

    def _check_relation(self, node) -> None:
        schema = (node.schemaname or "").lower()
        if schema in SYSTEM_SCHEMAS or (not schema and node.relname.lower().startswith("pg_")):
            label = f"{node.schemaname}.{node.relname}" if node.schemaname else node.relname
            raise IntegrityCheckError(
                f"{label} is a system catalog; integrity checks read your own tables only.",
                field=self.field,
            )


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
    _Guard(field).check(statement)
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
    validate_user_schema(schema, field="schema_name")
    if check.parent_schema:
        validate_user_schema(check.parent_schema, field="parent_schema")
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
