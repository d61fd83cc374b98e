"""Checks proposed from a target's catalog (read in the same read-only diagnostic session).

- orphans: one per foreign key (a constraint can be NOT VALID, or bypassed while triggers are
  off during a restore or replication), and per `<table>_id` / `<table>Id` column pointing at a
  table's single-column primary key without a constraint (Prisma's relationMode "prisma",
  Rails apps); and per column whose sampled values fall inside another table's primary key
  (an `author_id` pointing at users: see `infer_references`);
- duplicates: one per unique constraint or unique index on plain columns (a partial index
  brings its predicate along), and for text columns a second, case- and whitespace-insensitive
  one (`lower(btrim(col))`) reporting each group with its spellings, row count and keys;
- record counts: the largest tables (no range: the baseline/verification delta is the point);
- critical records: an enum or text column named role with an ADMIN-like value (at least one);
- business rule: a table with a boolean published column and title/content columns
  (published rows must have both), as in the playbook.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time

from django.conf import settings
from django.db import transaction
from psycopg import sql

from diagnostics.integrity.models import IntegrityCheck
from diagnostics.models import TargetDatabase

from . import services
from .compiler import IntegrityCheckError, canonical_query
from .runner import base_timeouts

logger = logging.getLogger(__name__)

SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')"

FOREIGN_KEYS = f"""
SELECT con.conname, ns.nspname AS schema, cl.relname AS table_name,
       pns.nspname AS parent_schema, pcl.relname AS parent_table, con.convalidated,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n
             ORDER BY k.o)::text[] AS columns,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n
             ORDER BY k.o)::text[] AS parent_columns
FROM pg_constraint con
JOIN pg_class cl ON cl.oid = con.conrelid
JOIN pg_namespace ns ON ns.oid = cl.relnamespace
JOIN pg_class pcl ON pcl.oid = con.confrelid
JOIN pg_namespace pns ON pns.oid = pcl.relnamespace
WHERE con.contype = 'f' AND ns.nspname NOT IN {SYSTEM_SCHEMAS}
ORDER BY ns.nspname, cl.relname, con.conname
"""

UNIQUES = f"""
SELECT ic.relname AS index_name, ns.nspname AS schema, cl.relname AS table_name,
       pg_get_expr(i.indpred, i.indrelid) AS predicate,
       ARRAY(SELECT a.attname FROM unnest(i.indkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n
             ORDER BY k.o)::text[] AS columns
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class cl ON cl.oid = i.indrelid
JOIN pg_namespace ns ON ns.oid = cl.relnamespace
WHERE i.indisunique AND NOT i.indisprimary AND i.indexprs IS NULL AND 0 <> ALL (i.indkey)
  AND ns.nspname NOT IN {SYSTEM_SCHEMAS} AND cl.relkind IN ('r', 'p')
ORDER BY ns.nspname, cl.relname, ic.relname
"""

COLUMNS = f"""
SELECT ns.nspname AS schema, cl.relname AS table_name, a.attname AS column_name,
       format_type(a.atttypid, a.atttypmod) AS type, t.typtype,
       ARRAY(SELECT e.enumlabel FROM pg_enum e WHERE e.enumtypid = a.atttypid
             ORDER BY e.enumsortorder)::text[] AS labels,
       greatest(cl.reltuples, 0)::bigint AS estimate, cl.relpages::bigint AS pages,
       (SELECT array_agg(pa.attname)::text[] FROM pg_index pi
          JOIN pg_attribute pa ON pa.attrelid = pi.indrelid AND pa.attnum = ANY (pi.indkey)
          WHERE pi.indrelid = cl.oid AND pi.indisprimary) AS pk
FROM pg_class cl
JOIN pg_namespace ns ON ns.oid = cl.relnamespace
JOIN pg_attribute a ON a.attrelid = cl.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE cl.relkind IN ('r', 'p') AND ns.nspname NOT IN {SYSTEM_SCHEMAS}
  AND cl.relname NOT LIKE '\\_prisma\\_migrations' AND NOT cl.relispartition
ORDER BY ns.nspname, cl.relname, a.attnum
"""

_ID_COLUMN = re.compile(r"^(?P<base>.+?)(_id|Id|ID)$")
_ADMIN = re.compile(r"admin", re.IGNORECASE)


def _label(schema: str, table: str) -> str:
    return table if schema == "public" else f"{schema}.{table}"


def _tables(columns: list[dict]) -> dict[tuple[str, str], dict]:
    """(schema, table) -> its columns by name, size estimates and primary key."""
    tables: dict[tuple[str, str], dict] = {}
    for c in columns:
        t = tables.setdefault(
            (c["schema"], c["table_name"]),
            {
                "columns": {},
                "estimate": c["estimate"],
                "pages": c.get("pages") or 0,
                "pk": c["pk"] or [],
            },
        )
        t["columns"][c["column_name"]] = c
    return tables


def _fk_covered(foreign_keys: list[dict]) -> set[tuple[str, str, tuple[str, ...]]]:
    return {(fk["schema"], fk["table_name"], tuple(fk["columns"])) for fk in foreign_keys}


def _named_references(tables: dict, covered: set) -> list[dict]:
    """`<table>_id` / `<table>Id` columns pointing at that table's single-column primary key
    (same type) that no foreign key covers."""
    out = []
    lowered = {(s, t.lower()): (s, t) for (s, t) in tables}
    for (schema, table), info in tables.items():
        for column, meta in info["columns"].items():
            m = _ID_COLUMN.match(column)
            if not m or (schema, table, (column,)) in covered or column in info["pk"]:
                continue
            base = m.group("base").rstrip("_").lower()
            for candidate in (base, base + "s", base + "es"):
                found = lowered.get((schema, candidate))
                if not found or found == (schema, table):
                    continue
                parent = tables[found]
                if len(parent["pk"]) != 1:
                    continue
                if parent["columns"][parent["pk"][0]]["type"] != meta["type"]:
                    continue
                out.append(
                    {
                        "schema": schema,
                        "table": table,
                        "column": column,
                        "parent": found,
                        "parent_column": parent["pk"][0],
                    }
                )
                break
    return out


# --- references inferred by value containment ----------------------------------------------
# A column whose sampled distinct values fall inside another table's primary key probably
# references it, whatever its name (an author_id pointing at users). Every probe runs under its
# own statement timeout, the probes together under a budget and a cap on candidate pairs, so a
# catalog of big tables costs seconds, not minutes.
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})
MIN_SHARE = 0.95  # of the sampled distinct values found among the parent's keys
SAMPLE_VALUES = 1000  # distinct values sampled per column
SAMPLE_PAGES = 100  # about this many pages are read per column (TABLESAMPLE SYSTEM)
# Fewest sampled distinct values that count as evidence: a name like a reference is evidence
# already; uuids do not collide by chance; small integers fall inside any serial key.
MIN_DISTINCT = {"named": 3, "uuid": 1, "integer": 20}
# An integer column with no reference-like name must be unlikely to fall inside the parent's
# keys by chance: density ** contained, density being the share of the integers in the sampled
# range that are keys of the parent (a counter 1..25 fits in any dense serial key: chance 1).
MAX_CHANCE = 0.001


def _type_family(type_name: str) -> str | None:
    if type_name in INTEGER_TYPES:
        return "integer"
    if type_name == "uuid":
        return "uuid"
    return None


def _probe(session, statement: str, params: dict, probe_ms: int) -> list[dict] | None:
    """One bounded read in its own savepoint: its rows, or None when it timed out or failed
    (a lock held by a migration, a permission); the session goes on."""
    from diagnostics.target import SessionBroken

    base = session.timeouts
    session.timeouts = dataclasses.replace(base, statement_ms=probe_ms)
    try:
        with session.savepoint():
            session.execute(f"SET LOCAL statement_timeout = {int(probe_ms)}")
            return session.query(statement, params)
    except SessionBroken:
        raise
    except Exception as exc:  # psycopg errors: 57014 timeout, 55P03 lock, 42501 permission
        logger.info("reference probe skipped: %s", str(exc).strip().splitlines()[0][:200])
        return None
    finally:
        session.timeouts = base


def _sample_statement(schema: str, table: str, column: str, pages: int) -> tuple[str, float]:
    percent = 100.0 if pages <= SAMPLE_PAGES else max(0.01, 100.0 * SAMPLE_PAGES / pages)
    statement = sql.SQL(
        "SELECT DISTINCT {col} AS value FROM {table} TABLESAMPLE SYSTEM ({pct}) REPEATABLE (0) "
        "WHERE {col} IS NOT NULL LIMIT {limit}"
    ).format(
        col=sql.Identifier(column),
        table=sql.Identifier(schema, table),
        pct=sql.Literal(round(percent, 4)),
        limit=sql.Literal(SAMPLE_VALUES),
    )
    return statement.as_string(None), percent


def _containment_statement(
    schema: str, table: str, column: str, family: str, *, density: bool
) -> str:
    """How many sampled values are among the parent's keys; with density, also how many of
    the parent's keys lie in the sampled values' range (how likely a chance containment is)."""
    array_type = "bigint[]" if family == "integer" else "uuid[]"
    in_range = (
        "(SELECT count(*) FROM {table} AS p WHERE p.{col} BETWEEN %(low)s AND %(high)s)"
        if density
        else "NULL::bigint"
    )
    return (
        sql.SQL(
            "SELECT (SELECT count(*) FROM unnest(%(values)s::{array_type}) AS v(value) "
            "WHERE EXISTS (SELECT 1 FROM {table} AS p WHERE p.{col} = v.value)) AS contained, "
            + in_range
            + " AS in_range"
        )
        .format(
            array_type=sql.SQL(array_type),
            table=sql.Identifier(schema, table),
            col=sql.Identifier(column),
        )
        .as_string(None)
    )


def infer_references(session, catalog: dict, *, limits: dict | None = None):
    """Columns whose sampled values fall (>= 95 %) inside another table's primary key.

    Candidates: `..._id` / `...Id` columns, and any other integer or uuid column, that no
    foreign key or `<table>_id` name already covers. Returns (evidence list, notes): the notes
    say what the bounds cut short.
    """
    limits = {
        "probe_ms": settings.QUELL_INTEGRITY_INFER_PROBE_TIMEOUT_MS,
        "max_pairs": settings.QUELL_INTEGRITY_INFER_MAX_PAIRS,
        "budget_ms": settings.QUELL_INTEGRITY_INFER_BUDGET_MS,
        **(limits or {}),
    }
    tables = _tables(catalog["columns"])
    covered = _fk_covered(catalog["foreign_keys"])
    named = _named_references(tables, covered)
    known = {(r["schema"], r["table"], r["column"]) for r in named}
    # How often a table is referenced already: among parents that all contain the values, the
    # one other tables point at is the likelier (users, not profiles).
    popularity: dict[tuple[str, str], int] = {}
    for parent in [(fk["parent_schema"], fk["parent_table"]) for fk in catalog["foreign_keys"]]:
        popularity[parent] = popularity.get(parent, 0) + 1
    for r in named:
        popularity[r["parent"]] = popularity.get(r["parent"], 0) + 1
    parents: dict[str, list[tuple[tuple[str, str], str]]] = {"integer": [], "uuid": []}
    for key, info in sorted(tables.items()):
        if len(info["pk"]) == 1:
            family = _type_family(info["columns"][info["pk"][0]]["type"])
            if family:
                parents[family].append((key, info["pk"][0]))
    candidates = []
    for (schema, table), info in sorted(tables.items()):
        for column, meta in info["columns"].items():
            family = _type_family(meta["type"])
            if (
                not family
                or info["pk"] == [column]
                or (schema, table, (column,)) in covered
                or (schema, table, column) in known
            ):
                continue
            kind = "named" if _ID_COLUMN.match(column) else family
            candidates.append((("named", "uuid", "integer").index(kind), schema, table, column))
    candidates.sort()

    deadline = time.monotonic() + limits["budget_ms"] / 1000
    pairs, found, notes = 0, [], []
    for order, schema, table, column in candidates:
        if pairs >= limits["max_pairs"] or time.monotonic() > deadline:
            notes.append(
                f"reference inference stopped after {pairs} probes "
                f"({'pair cap' if pairs >= limits['max_pairs'] else 'time budget'} reached); "
                f"{len(candidates) - candidates.index((order, schema, table, column))} "
                "columns not examined"
            )
            break
        kind = ("named", "uuid", "integer")[order]
        family = _type_family(tables[(schema, table)]["columns"][column]["type"])
        statement, percent = _sample_statement(
            schema, table, column, tables[(schema, table)]["pages"]
        )
        sampled = _probe(session, statement, None, limits["probe_ms"])
        values = [r["value"] for r in sampled or []]
        if len(values) < MIN_DISTINCT[kind]:
            continue
        results = []
        for parent_key, parent_column in parents[family]:
            if parent_key == (schema, table):
                continue  # a table's own key: any counter column would match
            if pairs >= limits["max_pairs"] or time.monotonic() > deadline:
                break
            pairs += 1
            density = kind == "integer"
            answer = _probe(
                session,
                _containment_statement(*parent_key, parent_column, family, density=density),
                {"values": values, "low": min(values), "high": max(values)}
                if density
                else {"values": values},
                limits["probe_ms"],
            )
            if answer is None:
                continue
            contained = int(answer[0]["contained"])
            chance = None
            if density:
                span = max(values) - min(values) + 1
                chance = (int(answer[0]["in_range"]) / span) ** contained
                if chance > MAX_CHANCE:
                    continue  # these numbers would fit in this table's keys whatever they are
            results.append((contained / len(values), contained, parent_key, parent_column, chance))
        qualifying = [r for r in results if r[0] >= MIN_SHARE]
        if not qualifying:
            continue
        qualifying.sort(
            key=lambda r: (-r[0], -popularity.get(r[2], 0), tables[r[2]]["estimate"], r[2])
        )
        share, contained, parent_key, parent_column, chance = qualifying[0]
        found.append(
            {
                "schema": schema,
                "table": table,
                "column": column,
                "parent": parent_key,
                "parent_column": parent_column,
                "sampled": len(values),
                "contained": contained,
                "share_pct": round(100 * share, 1),
                "chance": None if chance is None else float(f"{chance:.2g}"),
                "sample_percent": round(percent, 2),
                "other_candidates": [_label(*r[2]) for r in qualifying[1:]],
            }
        )
    return found, notes


def read_catalog(target: TargetDatabase) -> dict:
    """Foreign keys, unique indexes and columns of the target's user tables, and the references
    inferred from sampled values."""
    from diagnostics.target import open_session

    with open_session(target.to_connection_spec(), base_timeouts()) as session:
        catalog = {
            "foreign_keys": session.query(FOREIGN_KEYS),
            "uniques": session.query(UNIQUES),
            "columns": session.query(COLUMNS),
        }
        catalog["inferred"], catalog["notes"] = infer_references(session, catalog)
        for note in catalog["notes"]:
            logger.warning("%s on target %s", note, target.pk)
        return catalog


TEXT_TYPES = re.compile(r"^(text|character varying|character|varchar|char)\b")


def _quote(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def _normalized_duplicates_query(
    schema: str, table: str, columns: list[str], text_columns: set[str], pk: list[str], predicate
) -> str:
    """Groups of rows equal once text is lowercased and trimmed, written with more than one
    spelling (the exact ones are the exact check's): the value, the rows, up to 5 spellings
    and up to 10 keys of each group."""
    grouped = [f"lower(btrim({_quote(c)}))" if c in text_columns else _quote(c) for c in columns]
    raw = (
        _quote(columns[0])
        if len(columns) == 1
        else "jsonb_build_array(" + ", ".join(_quote(c) for c in columns) + ")"
    )
    if not pk:
        key = "ctid::text"
    elif len(pk) == 1:
        key = _quote(pk[0])
    else:
        key = "jsonb_build_array(" + ", ".join(_quote(c) for c in pk) + ")"
    where = " AND ".join(f"{_quote(c)} IS NOT NULL" for c in columns)
    if predicate:
        where += f" AND ({predicate})"
    selected = ", ".join(f"{g} AS {_quote(c)}" for g, c in zip(grouped, columns, strict=True))
    positions = ", ".join(str(i + 1) for i in range(len(columns)))
    return (
        f"SELECT {selected}, count(*) AS rows, "
        f"(array_agg(DISTINCT {raw}))[1:5] AS spellings, "
        f"(array_agg({key} ORDER BY {key}))[1:10] AS keys "
        f"FROM {sql.Identifier(schema, table).as_string(None)} WHERE {where} "
        f"GROUP BY {positions} HAVING count(DISTINCT {raw}) > 1 "
        f"ORDER BY count(*) DESC, {positions}"
    )


def _orphan_suggestion(ref: dict, reason: str) -> dict:
    schema, table, column = ref["schema"], ref["table"], ref["column"]
    return {
        "name": f"orphaned {_label(schema, table)} ({column} -> {_label(*ref['parent'])})",
        "kind": "orphans",
        "reason": reason,
        "definition": {
            "schema_name": schema,
            "table_name": table,
            "columns": [column],
            "parent_schema": ref["parent"][0],
            "parent_table": ref["parent"][1],
            "parent_columns": [ref["parent_column"]],
            "severity": "high",
        },
    }


def propose(catalog: dict) -> list[dict]:
    """Check definitions (not saved) from a catalog snapshot, each with a reason."""
    out: list[dict] = []
    tables = _tables(catalog["columns"])
    covered = _fk_covered(catalog["foreign_keys"])
    for fk in catalog["foreign_keys"]:
        cols, pcols = list(fk["columns"]), list(fk["parent_columns"])
        child, parent = (
            _label(fk["schema"], fk["table_name"]),
            _label(fk["parent_schema"], fk["parent_table"]),
        )
        reason = f"foreign key {fk['conname']}" + (
            " (NOT VALID: existing rows were never checked)" if not fk["convalidated"] else ""
        )
        out.append(
            {
                "name": f"orphaned {child} ({', '.join(cols)} -> {parent})",
                "kind": "orphans",
                "reason": reason,
                "definition": {
                    "schema_name": fk["schema"],
                    "table_name": fk["table_name"],
                    "columns": cols,
                    "parent_schema": fk["parent_schema"],
                    "parent_table": fk["parent_table"],
                    "parent_columns": pcols,
                    "severity": "critical",
                },
            }
        )
    for ref in _named_references(tables, covered):
        out.append(
            _orphan_suggestion(
                ref,
                f"column {ref['column']} looks like a reference to {ref['parent'][1]} "
                "(no foreign key enforces it)",
            )
        )
    for ref in catalog.get("inferred", []):
        parent = _label(*ref["parent"])
        reason = (
            f"values of column {ref['column']} look like references to {parent}: "
            f"{ref['contained']} of {ref['sampled']} sampled distinct values "
            f"({ref['share_pct']:g} %) are among {parent}.{ref['parent_column']} "
            "(no foreign key enforces it)"
        )
        if ref["chance"] is not None:
            reason += f"; by chance alone about {ref['chance']:g}"
        if ref["other_candidates"]:
            reason += "; also contained in " + ", ".join(ref["other_candidates"])
        suggestion = _orphan_suggestion(ref, reason)
        suggestion["evidence"] = {
            "sampled": ref["sampled"],
            "contained": ref["contained"],
            "share_pct": ref["share_pct"],
            "chance": ref["chance"],
            "candidate_table": parent,
            "candidate_column": ref["parent_column"],
            "sample_percent": ref["sample_percent"],
            "other_candidates": ref["other_candidates"],
        }
        out.append(suggestion)
    for u in catalog["uniques"]:
        cols = list(u["columns"])
        label = _label(u["schema"], u["table_name"])
        out.append(
            {
                "name": f"duplicate {label} ({', '.join(cols)})",
                "kind": "duplicates",
                "reason": f"unique index {u['index_name']}",
                "definition": {
                    "schema_name": u["schema"],
                    "table_name": u["table_name"],
                    "columns": cols,
                    "predicate": u["predicate"] or "",
                    "severity": "high",
                },
            }
        )
        info = tables.get((u["schema"], u["table_name"]))
        if info is None:
            continue
        text_columns = {
            c for c in cols if c in info["columns"] and TEXT_TYPES.match(info["columns"][c]["type"])
        }
        if not text_columns:
            continue
        out.append(
            {
                "name": f"duplicate {label} ({', '.join(cols)}) ignoring case and spaces",
                "kind": "business_rule",
                "reason": f"unique index {u['index_name']} on text: values differing only in "
                "case or surrounding spaces (lower(btrim(...))) are duplicates it lets through",
                "definition": {
                    "query": _normalized_duplicates_query(
                        u["schema"],
                        u["table_name"],
                        cols,
                        text_columns,
                        info["pk"],
                        u["predicate"],
                    ),
                    "severity": "high",
                },
            }
        )
    biggest = sorted(tables.items(), key=lambda kv: (-kv[1]["estimate"], kv[0]))[:8]
    for (schema, table), _info in biggest:
        out.append(
            {
                "name": f"{_label(schema, table)} records",
                "kind": "row_count",
                "reason": "record count (the baseline/verification delta shows lost rows)",
                "definition": {"schema_name": schema, "table_name": table, "severity": "medium"},
            }
        )
    for (schema, table), info in tables.items():
        role = info["columns"].get("role")
        if role is not None:
            admin = next((v for v in role["labels"] if _ADMIN.search(v)), None)
            if admin or role["type"] in ("text", "character varying"):
                value = admin or "ADMIN"
                literal = "'" + value.replace("'", "''") + "'"
                out.append(
                    {
                        "name": f"{_label(schema, table)} with role {value}",
                        "kind": "critical_count",
                        "reason": "critical records: at least one administrator must remain",
                        "definition": {
                            "schema_name": schema,
                            "table_name": table,
                            "predicate": f'"role" = {literal}',
                            "min_count": 1,
                            "severity": "critical",
                        },
                    }
                )
        cols = info["columns"]
        published = cols.get("published")
        required = [c for c in ("title", "content", "body") if c in cols]
        if published is not None and published["type"] == "boolean" and required:
            checks = " OR ".join(f"coalesce(\"{c}\", '') = ''" for c in required)
            out.append(
                {
                    "name": f"published {_label(schema, table)} without " + " or ".join(required),
                    "kind": "business_rule",
                    "reason": "business rule: published rows must have " + " and ".join(required),
                    "definition": {
                        "schema_name": schema,
                        "table_name": table,
                        "predicate": f'"published" AND ({checks})',
                        "severity": "high",
                    },
                }
            )
    # Never the same check twice (two unique indexes on the same columns, a valid one built
    # beside an invalid one, propose the same duplicate check).
    unique: dict[str, dict] = {}
    for suggestion in out:
        unique.setdefault(suggestion["name"], suggestion)
    return list(unique.values())


def _same_query(a: str, b: str) -> bool:
    try:
        return canonical_query(a) == canonical_query(b)
    except IntegrityCheckError:
        return a.strip() == b.strip()


def _same(check: IntegrityCheck, s: dict) -> bool:
    d = s["definition"]
    if check.kind != s["kind"]:
        return False
    if d.get("query") or check.query:
        return bool(d.get("query")) and bool(check.query) and _same_query(check.query, d["query"])
    same_columns = (
        check.schema_name == d.get("schema_name", "public")
        and check.table_name == d.get("table_name", "")
        and list(check.columns) == list(d.get("columns", []))
    )
    if "evidence" in s and same_columns:
        return True  # an inferred reference already checked, against whichever parent
    return (
        same_columns
        and check.parent_table == d.get("parent_table", "")
        and check.predicate.strip() == d.get("predicate", "").strip()
    )


def suggestions_for(target: TargetDatabase) -> list[dict]:
    """Proposals for a target, each marked `exists` when an equivalent check is defined."""
    from diagnostics.target import TargetUnreachable

    try:
        catalog = read_catalog(target)
    except TargetUnreachable as exc:
        raise IntegrityCheckError(f"Target unreachable: {exc}", field="target") from None
    existing = list(IntegrityCheck.objects.filter(target=target))
    names = {c.name for c in existing}
    out = propose(catalog)
    for s in out:
        s["exists"] = s["name"] in names or any(_same(c, s) for c in existing)
    return out


@transaction.atomic
def apply_suggestions(target: TargetDatabase, *, names=None, actor=None) -> list[IntegrityCheck]:
    """Create the suggested checks not yet defined (all, or those named)."""
    wanted = set(names) if names else None
    suggestions = suggestions_for(target)
    if wanted is not None:
        unknown = wanted - {s["name"] for s in suggestions}
        if unknown:
            raise IntegrityCheckError(
                f"Not a suggestion for this target: {', '.join(sorted(unknown))}.",
                field="names",
            )
    created = []
    for s in suggestions:
        if s["exists"] or (wanted is not None and s["name"] not in wanted):
            continue
        created.append(
            services.integrity_check_create(
                target_id=target.pk,
                actor=actor,
                name=s["name"][:200],
                kind=s["kind"],
                description=f"Suggested from the catalog: {s['reason']}.",
                **s["definition"],
            )
        )
    return created
