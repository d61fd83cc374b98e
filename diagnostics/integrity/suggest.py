"""Checks proposed from a target's catalog (read in the same read-only diagnostic session).

- orphans: one per foreign key (a constraint can be NOT VALID, or bypassed while triggers are
  off during a restore or replication), and per `<table>_id` / `<table>Id` column pointing at a
  table's single-column primary key without a constraint (Prisma's relationMode "prisma",
  Rails apps);
- duplicates: one per unique constraint or unique index on plain columns (a partial index
  brings its predicate along);
- record counts: the largest tables (no range: the baseline/verification delta is the point);
- critical records: an enum or text column named role with an ADMIN-like value (at least one);
- business rule: a table with a boolean published column and title/content columns
  (published rows must have both), as in the playbook.
"""

from __future__ import annotations

import re

from django.db import transaction

from ..models import IntegrityCheck, TargetDatabase
from . import services
from .compiler import IntegrityCheckError
from .runner import base_timeouts

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
       greatest(cl.reltuples, 0)::bigint AS estimate,
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


def read_catalog(target: TargetDatabase) -> dict:
    """Foreign keys, unique indexes and columns of the target's user tables."""
    from diagnostics.target import open_session

    with open_session(target.to_connection_spec(), base_timeouts()) as session:
        return {
            "foreign_keys": session.query(FOREIGN_KEYS),
            "uniques": session.query(UNIQUES),
            "columns": session.query(COLUMNS),
        }


def propose(catalog: dict) -> list[dict]:
    """Check definitions (not saved) from a catalog snapshot, each with a reason."""
    out: list[dict] = []
    tables: dict[tuple[str, str], dict] = {}
    for c in catalog["columns"]:
        t = tables.setdefault(
            (c["schema"], c["table_name"]),
            {"columns": {}, "estimate": c["estimate"], "pk": c["pk"] or []},
        )
        t["columns"][c["column_name"]] = c
    covered = set()
    for fk in catalog["foreign_keys"]:
        cols, pcols = list(fk["columns"]), list(fk["parent_columns"])
        covered.add((fk["schema"], fk["table_name"], tuple(cols)))
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
                pk_type = parent["columns"][parent["pk"][0]]["type"]
                if pk_type != meta["type"]:
                    continue
                out.append(
                    {
                        "name": f"orphaned {_label(schema, table)} ({column} -> {_label(*found)})",
                        "kind": "orphans",
                        "reason": f"column {column} looks like a reference to {found[1]} "
                        "(no foreign key enforces it)",
                        "definition": {
                            "schema_name": schema,
                            "table_name": table,
                            "columns": [column],
                            "parent_schema": found[0],
                            "parent_table": found[1],
                            "parent_columns": [parent["pk"][0]],
                            "severity": "high",
                        },
                    }
                )
                break
    for u in catalog["uniques"]:
        cols = list(u["columns"])
        out.append(
            {
                "name": f"duplicate {_label(u['schema'], u['table_name'])} ({', '.join(cols)})",
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
    return out


def _same(check: IntegrityCheck, s: dict) -> bool:
    d = s["definition"]
    return (
        check.kind == s["kind"]
        and check.schema_name == d.get("schema_name", "public")
        and check.table_name == d.get("table_name", "")
        and list(check.columns) == list(d.get("columns", []))
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
