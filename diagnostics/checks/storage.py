"""Storage: database sizes and the largest tables.

Size functions stat every file of a relation and take an ACCESS SHARE lock, so they wait
behind a migration's ACCESS EXCLUSIVE lock and cost a lot on catalogs of tens of thousands of
tables. Sizes here come from pg_class.relpages (the planner's estimate, no lock, no file
access), capped with LIMIT; exact sizes are added only for the few largest relations, one
relation at a time with a short lock_timeout, and never for a relation someone holds or awaits
in ACCESS EXCLUSIVE ("catalog locked"), which is marked instead while the others are measured.
"""

from __future__ import annotations

from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import human_bytes, rows


@register
class DatabaseSizesCheck(Check):
    key = "database_sizes"
    title = "Database sizes"
    family = Family.STORAGE
    description = (
        "Size of this database (approximate, from relpages) and of the other databases on the "
        "server that this role may connect to (pg_database_size)."
    )
    this_sql = """
        SELECT current_database() AS database,
               sum(c.relpages)::bigint * current_setting('block_size')::bigint AS approx_bytes,
               count(*) FILTER (WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN
                                ('pg_catalog', 'information_schema')) AS tables
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    """
    others_sql = """
        SELECT d.datname AS database,
               CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                    THEN pg_database_size(d.oid) END AS bytes
        FROM pg_database d
        WHERE d.datallowconn AND d.datname <> current_database()
          AND d.datname NOT IN ('rdsadmin', 'azure_maintenance', 'azure_sys', 'cloudsqladmin')
        ORDER BY d.datname
        LIMIT %(limit)s
    """
    sql = this_sql  # plus others_sql for the other databases
    default_thresholds = {"other_databases": True, "limit": 50, "warning_bytes": None}

    def run(self, session) -> CheckOutcome:
        this = rows([session.one(self.this_sql)])[0]
        this["approximate"] = True
        findings = [this]
        if self.thresholds["other_databases"]:
            for r in rows(session.query(self.others_sql, {"limit": int(self.thresholds["limit"])})):
                r["approximate"] = False
                if r["bytes"] is None:
                    r["note"] = "no CONNECT privilege: size not visible"
                findings.append(r)
        status = CheckStatus.OK
        warning = self.thresholds["warning_bytes"]
        if warning and (this["approx_bytes"] or 0) >= int(warning):
            status = CheckStatus.WARNING
        summary = (
            f"{this['database']} ~{human_bytes(this['approx_bytes'])} ({this['tables']} tables)"
        )
        if len(findings) > 1:
            summary += f"; {len(findings) - 1} other database(s) on the server"
        return CheckOutcome(
            status,
            summary,
            findings=findings,
            metrics={
                "database_bytes": float(this["approx_bytes"] or 0),
                "tables": float(this["tables"] or 0),
            },
        )


@register
class TableSizesCheck(Check):
    key = "table_sizes"
    title = "Largest tables"
    family = Family.STORAGE
    description = (
        "The largest tables with their indexes and TOAST, approximate (relpages-based, no "
        "lock). Exact sizes for the top few unless a relation is catalog locked (held in "
        "ACCESS EXCLUSIVE by another session), which is marked and not measured."
    )
    sql = """
        WITH t AS (
            SELECT c.oid, n.nspname AS schema, c.relname AS table, c.relkind,
                   c.reltuples::bigint AS approx_rows, c.reltoastrelid,
                   c.relpages::bigint AS heap_pages,
                   COALESCE(tc.relpages, 0)::bigint AS toast_pages,
                   COALESCE((SELECT sum(ic.relpages) FROM pg_index i
                             JOIN pg_class ic ON ic.oid = i.indexrelid
                             WHERE i.indrelid = c.oid), 0)::bigint AS index_pages
            FROM pg_class c
            JOIN pg_namespace n ON n.oid = c.relnamespace
            LEFT JOIN pg_class tc ON tc.oid = c.reltoastrelid
            WHERE c.relkind IN ('r', 'm', 'p')
              AND n.nspname NOT IN ('pg_catalog', 'information_schema')
              AND n.nspname NOT LIKE 'pg_toast%%' AND NOT pg_is_other_temp_schema(n.oid)
        ), top AS (
            SELECT t.*, (t.heap_pages + t.toast_pages + t.index_pages)
                        * current_setting('block_size')::bigint AS approx_total_bytes
            FROM t ORDER BY approx_total_bytes DESC, t.oid LIMIT %(limit)s
        ), flagged AS (
            SELECT top.*,
                   (top.oid::bigint = ANY(%(locked)s::bigint[])
                    OR top.reltoastrelid::bigint = ANY(%(locked)s::bigint[])
                    OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = top.oid
                               AND i.indexrelid::bigint = ANY(%(locked)s::bigint[])))
                       AS catalog_locked,
                   row_number() OVER (ORDER BY top.approx_total_bytes DESC, top.oid) AS rank
            FROM top
        )
        SELECT f.schema, f.table, f.relkind, f.approx_rows, f.approx_total_bytes,
               f.heap_pages * current_setting('block_size')::bigint AS approx_table_bytes,
               f.index_pages * current_setting('block_size')::bigint AS approx_index_bytes,
               f.toast_pages * current_setting('block_size')::bigint AS approx_toast_bytes,
               f.catalog_locked, f.oid::bigint AS oid, f.rank
        FROM flagged f ORDER BY f.rank
    """
    # One relation at a time (TargetSession.read_relation): the size functions open the
    # relation, i.e. take ACCESS SHARE, and queue behind a migration's ACCESS EXCLUSIVE.
    exact_sql = "SELECT pg_total_relation_size(%(oid)s::oid) AS total_bytes"
    default_thresholds = {"limit": 20, "exact": 5, "warning_bytes": None}

    def run(self, session) -> CheckOutcome:
        locked = session.exclusively_locked_relations()
        found = rows(
            session.query(
                self.sql,
                {
                    "limit": int(self.thresholds["limit"]),
                    "exact": int(self.thresholds["exact"]),
                    "locked": list(locked),
                },
            )
        )
        locked_names = []
        for r in found:
            oid, rank = r.pop("oid"), r.pop("rank")
            r["total_bytes"] = None
            if not r["catalog_locked"] and rank <= int(self.thresholds["exact"]):
                if r["relkind"] == "p":
                    continue  # a partitioned table has no storage of its own
                measured = session.read_relation(self.exact_sql, {"oid": oid})
                if measured is None:
                    r["catalog_locked"] = True  # locked since the lock list was read
                else:
                    r["total_bytes"] = measured[0]["total_bytes"]
            if r["catalog_locked"]:
                r["status"] = "skipped"
                r["note"] = (
                    "catalog locked: held or awaited in ACCESS EXCLUSIVE by another session; "
                    "size not measured (approximate size from the catalog)"
                )
                locked_names.append(f"{r['schema']}.{r['table']}")
        status = CheckStatus.OK
        warning = self.thresholds["warning_bytes"]
        if warning and any(
            (r["total_bytes"] or r["approx_total_bytes"] or 0) >= int(warning) for r in found
        ):
            status = CheckStatus.WARNING
        if found:
            top = found[0]
            size = (
                top["total_bytes"] if top["total_bytes"] is not None else top["approx_total_bytes"]
            )
            summary = (
                f"largest: {top['schema']}.{top['table']} "
                f"{'' if top['total_bytes'] is not None else '~'}{human_bytes(size)} "
                f"(~{top['approx_rows']:,} rows)"
            )
        else:
            summary = "no user tables"
        if locked_names:
            summary += (
                f"; {len(locked_names)} catalog locked (ACCESS EXCLUSIVE held or queued), not "
                f"measured: {', '.join(locked_names[:5])}"
            )
        # Locked relations outside the top list are still worth naming.
        extra = [
            v
            for v in locked.values()
            if v["relation"] not in {f"{r['schema']}.{r['table']}" for r in found}
            and v["relation"] not in {r["table"] for r in found}
        ]
        for v in extra[:20]:
            found.append(
                {
                    "relation": v["relation"],
                    "catalog_locked": True,
                    "status": "skipped",
                    "locked_by_pid": v["pid"],
                    "note": "held or awaited in ACCESS EXCLUSIVE by another session",
                }
            )
        return CheckOutcome(
            status,
            summary,
            findings=found,
            metrics={
                "largest_table_bytes": float(
                    (found[0].get("total_bytes") or found[0].get("approx_total_bytes") or 0)
                    if found
                    else 0
                )
            },
        )
