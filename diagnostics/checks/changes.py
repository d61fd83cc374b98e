"""Changes: recent schema migrations, and relations whose definition changed recently.

Migration tables of common tools are found by name in any schema. Their shapes differ, and some
record no time at all (Rails/golang-migrate/dbmate `schema_migrations`, `alembic_version`): the
check then shows the current version and says it cannot date it.

PostgreSQL records when a catalog row was written only with track_commit_timestamp on: the
commit time of the transaction that last wrote a relation's pg_class / pg_attribute /
pg_constraint / pg_index / pg_trigger rows is then the time its definition last changed.
"""

from __future__ import annotations

import datetime as dt
import re

from psycopg import errors as pg_errors

from ..target import quote_ident
from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import escalate, human_seconds, rows

# tool -> (table name, how to read it). Each query gets %(window)s (seconds) and %(limit)s,
# and returns: migration, applied_at (or NULL), recent (bool), failed (bool).
MIGRATION_TABLES = {
    "django": (
        "django_migrations",
        """
        SELECT app || '.' || name AS migration, applied AS applied_at,
               applied > clock_timestamp() - make_interval(secs => %(window)s) AS recent,
               false AS failed
        FROM {table} ORDER BY applied DESC, id DESC LIMIT %(limit)s""",
    ),
    "prisma": (
        "_prisma_migrations",
        """
        SELECT migration_name AS migration, COALESCE(finished_at, started_at) AS applied_at,
               COALESCE(finished_at, started_at)
                   > clock_timestamp() - make_interval(secs => %(window)s) AS recent,
               (finished_at IS NULL AND rolled_back_at IS NULL) AS failed,
               rolled_back_at IS NOT NULL AS rolled_back, applied_steps_count,
               left(logs, 500) AS logs
        FROM {table} ORDER BY started_at DESC LIMIT %(limit)s""",
    ),
    "flyway": (
        "flyway_schema_history",
        """
        SELECT COALESCE(version, '') || ' ' || description AS migration,
               installed_on AS applied_at,
               installed_on > localtimestamp - make_interval(secs => %(window)s) AS recent,
               NOT success AS failed, script, installed_by
        FROM {table} ORDER BY installed_rank DESC LIMIT %(limit)s""",
    ),
    "knex": (
        "knex_migrations",
        """
        SELECT name AS migration, migration_time AS applied_at,
               migration_time > clock_timestamp() - make_interval(secs => %(window)s) AS recent,
               false AS failed, batch
        FROM {table} ORDER BY id DESC LIMIT %(limit)s""",
    ),
    "goose": (
        "goose_db_version",
        """
        SELECT version_id::text AS migration, tstamp AS applied_at,
               tstamp > localtimestamp - make_interval(secs => %(window)s) AS recent,
               false AS failed, is_applied
        FROM {table} ORDER BY id DESC LIMIT %(limit)s""",
    ),
    "alembic": (
        "alembic_version",
        """
        SELECT version_num AS migration, NULL::timestamptz AS applied_at, NULL::bool AS recent,
               false AS failed
        FROM {table} LIMIT %(limit)s""",
    ),
}
# schema_migrations is shared by Rails, golang-migrate and dbmate: read by its columns.
SCHEMA_MIGRATIONS_DIRTY = """
    SELECT version::text AS migration, NULL::timestamptz AS applied_at, NULL::bool AS recent,
           dirty AS failed
    FROM {table} ORDER BY version DESC LIMIT %(limit)s"""
SCHEMA_MIGRATIONS_PLAIN = """
    SELECT version::text AS migration, NULL::timestamptz AS applied_at, NULL::bool AS recent,
           false AS failed
    FROM {table} ORDER BY version DESC LIMIT %(limit)s"""

FIND_SQL = """
    SELECT n.nspname AS schema, c.relname AS table, c.oid::bigint AS oid,
           has_table_privilege(c.oid, 'SELECT') AS readable,
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                   AND a.attname = 'dirty' AND NOT a.attisdropped) AS has_dirty
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v') AND c.relname = ANY(%(names)s)
      AND NOT pg_is_other_temp_schema(n.oid)
    ORDER BY n.nspname, c.relname
"""

WHAT_FLAGS = [(1, "relation"), (2, "column"), (4, "constraint"), (8, "index"), (16, "trigger")]

RAILS_VERSION = re.compile(r"^(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})$")


@register
class RecentMigrationsCheck(Check):
    key = "recent_migrations"
    title = "Recent schema migrations"
    family = Family.CHANGES
    description = (
        "Migrations applied recently, or failed, according to the migration tables of "
        "Django, Prisma, Flyway, Knex, goose, Rails/golang-migrate/dbmate (schema_migrations) "
        "and Alembic, in any schema. A migration shortly before an incident is a prime suspect."
    )
    sql = FIND_SQL  # then each tool's table is read with its own query (MIGRATION_TABLES)
    default_thresholds = {"window_s": 86400, "limit": 10}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        names = [table for table, _ in MIGRATION_TABLES.values()] + ["schema_migrations"]
        tables = session.query(FIND_SQL, {"names": names})
        if not tables:
            return CheckOutcome(
                CheckStatus.SKIPPED, "no migration table of a known tool found in this database"
            )
        locked = session.exclusively_locked_relations()
        by_table = {table: (tool, sql) for tool, (table, sql) in MIGRATION_TABLES.items()}
        status = CheckStatus.OK
        findings, recent, failed, notes, unreadable = [], [], [], [], []
        params = {"window": float(t["window_s"]), "limit": int(t["limit"])}
        for tb in tables:
            qualified = f"{quote_ident(tb['schema'])}.{quote_ident(tb['table'])}"
            if tb["table"] == "schema_migrations":
                tool = "golang-migrate" if tb["has_dirty"] else "rails/dbmate"
                sql = SCHEMA_MIGRATIONS_DIRTY if tb["has_dirty"] else SCHEMA_MIGRATIONS_PLAIN
            else:
                tool, sql = by_table[tb["table"]]
            if not tb["readable"]:
                unreadable.append(qualified)
                continue
            try:
                # Reading the table takes ACCESS SHARE: one table at a time, short lock_timeout.
                read = (
                    None
                    if tb["oid"] in locked
                    else session.read_relation(sql.format(table=qualified), params)
                )
            except (
                pg_errors.UndefinedColumn,
                pg_errors.DatatypeMismatch,
                pg_errors.UndefinedFunction,
            ) as exc:
                notes.append(f"{qualified}: unexpected shape ({exc.diag.message_primary})")
                continue
            if read is None:
                notes.append(f"{qualified} catalog locked (a migration may be running now)")
                findings.append(
                    {"tool": tool, "table": qualified, "status": "skipped", "catalog_locked": True}
                )
                status = escalate(status, CheckStatus.WARNING)
                continue
            found = rows(read)
            for r in found:
                r.update(tool=tool, table=qualified)
                if tool == "rails/dbmate":
                    self._date_rails_version(r, float(t["window_s"]))
                if r["recent"]:
                    recent.append(r)
                if r["failed"]:
                    failed.append(r)
            if found and all(r["applied_at"] is None for r in found):
                notes.append(
                    f"{tool} ({qualified}) records no apply time: current version "
                    f"{found[0]['migration']}"
                )
            findings += found
        if failed:
            status = escalate(status, CheckStatus.CRITICAL)
        if recent:
            status = escalate(status, CheckStatus.WARNING)
        parts = []
        if failed:
            parts.append(
                f"{len(failed)} failed or unfinished migration(s): "
                + ", ".join(f"{r['tool']} {r['migration']}" for r in failed[:3])
            )
        if recent:
            newest = recent[0]
            parts.append(
                f"{len(recent)} migration(s) in the last "
                f"{human_seconds(t['window_s'])}; newest {newest['tool']} "
                f"{newest['migration']} at {newest['applied_at']}"
            )
        if not parts:
            parts.append(
                f"no migration in the last {human_seconds(t['window_s'])} "
                f"({', '.join(sorted({f['tool'] for f in findings})) or 'none read'})"
            )
        summary = "; ".join(parts + notes)
        outcome = CheckOutcome(
            status,
            summary,
            findings=findings,
            metrics={"recent_migrations": len(recent), "failed_migrations": len(failed)},
        )
        if unreadable:
            fix = " ".join(f"GRANT SELECT ON {q} TO {session.current_user};" for q in unreadable)
            outcome.status = escalate(outcome.status, CheckStatus.WARNING)
            outcome.summary += f"; cannot read {', '.join(unreadable)} (coverage gap)"
            outcome.fix = fix
            outcome.findings.append(
                {"coverage_gap": "migration tables not readable", "tables": unreadable, "fix": fix}
            )
        return outcome

    @staticmethod
    def _date_rails_version(r: dict, window_s: float) -> None:
        """Rails versions are UTC timestamps (YYYYMMDDHHMMSS): the date it was written."""
        m = RAILS_VERSION.match(r["migration"] or "")
        if not m:
            return
        try:
            written = dt.datetime(*map(int, m.groups()), tzinfo=dt.UTC)
        except ValueError:
            return
        r["written_at"] = written.isoformat()
        r["note"] = "apply time not recorded; version timestamp is when it was written"


@register
class SchemaChangesCheck(Check):
    key = "schema_changes"
    title = "Recently changed relations"
    family = Family.CHANGES
    description = (
        "Tables, views, indexes and sequences whose definition changed recently, from the "
        "commit timestamps of their catalog rows. Needs track_commit_timestamp = on; without "
        "it PostgreSQL cannot tell, and the check says so."
    )
    sql = """
        -- Objects created after initdb have OIDs from 16384 (FirstNormalObjectId) on: a cheap
        -- filter (extension objects are excluded further down).
        WITH rels AS MATERIALIZED (  -- tables, views, foreign tables (not indexes, TOAST...)
            SELECT c.oid, c.xmin FROM pg_class c
            WHERE c.oid >= 16384 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
        ), written AS (  -- who last wrote each catalog row of a relation
            SELECT rels.oid AS relid, rels.xmin AS x, 'relation' AS what FROM rels
            UNION ALL
            SELECT a.attrelid, a.xmin, 'column'
            FROM pg_attribute a WHERE a.attnum > 0 AND a.attrelid IN (SELECT oid FROM rels)
            UNION ALL
            SELECT co.conrelid, co.xmin, 'constraint'
            FROM pg_constraint co WHERE co.conrelid IN (SELECT oid FROM rels)
            UNION ALL
            SELECT i.indrelid, i.xmin, 'index'
            FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rels)
            UNION ALL
            SELECT tg.tgrelid, tg.xmin, 'trigger'
            FROM pg_trigger tg WHERE tg.tgrelid IN (SELECT oid FROM rels)
        ), recent AS MATERIALIZED (  -- one commit-timestamp lookup per transaction, not per row
            SELECT t.x, t.ts FROM (
                SELECT d.x, pg_xact_commit_timestamp(d.x) AS ts
                FROM (SELECT DISTINCT w.x FROM written w) d
            ) t
            WHERE t.ts > clock_timestamp() - make_interval(secs => %(window)s)
        ), changed AS (  -- per relation; `what` as bit flags so the aggregate can hash
            SELECT w.relid, max(r.ts) AS ts,
                   bit_or(CASE w.what WHEN 'relation' THEN 1 WHEN 'column' THEN 2
                                      WHEN 'constraint' THEN 4 WHEN 'index' THEN 8
                                      ELSE 16 END) AS what_bits
            FROM written w JOIN recent r ON r.x = w.x
            GROUP BY w.relid
        ), skip AS MATERIALIZED (  -- extension objects, TOAST and other sessions' temp tables
            SELECT d.objid AS oid FROM pg_depend d
            WHERE d.classid = 'pg_class'::regclass AND d.deptype = 'e'
            UNION ALL
            SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname LIKE 'pg_toast%%' OR n.nspname LIKE 'pg_temp%%'
        ), top AS MATERIALIZED (
            SELECT ch.* FROM changed ch
            WHERE ch.relid NOT IN (SELECT skip.oid FROM skip)  -- a hashed subplan
            ORDER BY ch.ts DESC
            LIMIT %(limit)s
        )
        SELECT n.nspname AS schema, c.relname AS relation, c.relkind::text AS relkind,
               top.ts AS changed_at,
               EXTRACT(EPOCH FROM clock_timestamp() - top.ts)::float AS age_s, top.what_bits
        FROM top
        JOIN pg_class c ON c.oid = top.relid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        ORDER BY top.ts DESC
    """
    default_thresholds = {"window_s": 86400, "limit": 50}

    def run(self, session) -> CheckOutcome:
        if session.setting("track_commit_timestamp") != "on":
            return CheckOutcome(
                CheckStatus.SKIPPED,
                "PostgreSQL cannot tell when a relation's definition changed: "
                "track_commit_timestamp is off (see recent_migrations for what tools recorded)",
                fix="ALTER SYSTEM SET track_commit_timestamp = on; -- then restart the server",
            )
        t = self.thresholds
        found = rows(
            session.query(self.sql, {"window": float(t["window_s"]), "limit": int(t["limit"])})
        )
        for r in found:
            bits = r.pop("what_bits") or 0
            r["what_changed"] = [name for flag, name in WHAT_FLAGS if bits & flag]
        if not found:
            return CheckOutcome(
                CheckStatus.OK,
                f"no relation changed in the last {human_seconds(t['window_s'])} "
                "(by commit timestamps; changes made before "
                "track_commit_timestamp was turned on cannot be dated)",
            )
        names = ", ".join(f"{r['schema']}.{r['relation']}" for r in found[:5])
        return CheckOutcome(
            CheckStatus.WARNING,
            f"{len(found)} relation(s) changed in the last {human_seconds(t['window_s'])}, "
            f"newest {human_seconds(found[0]['age_s'])} ago: {names}",
            findings=found,
            metrics={"changed_relations": len(found)},
        )
