"""Maintenance: dead tuples and bloat, transaction-id wraparound, invalid indexes, sequences."""

from __future__ import annotations

import psycopg

from ..target import quote_ident
from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import by_threshold, escalate, human_bytes, human_seconds, rows, with_coverage_gap

XID_LIMIT = 2**31 - 1  # transaction ids wrap around after about 2.1 billion


@register
class DeadTuplesCheck(Check):
    key = "dead_tuples"
    title = "Dead tuples and bloat"
    family = Family.MAINTENANCE
    description = (
        "Per table: dead-tuple percentage (the playbook's query), the size of the dead space, "
        "last manual and automatic vacuum, and whether autovacuum is disabled for the table. "
        "Dead bytes come from pgstattuple_approx when that extension is installed and usable, "
        "else from the table's size times its dead ratio; each row says which."
    )
    # pg_stat_user_tables computes some twenty statistics per table: on a catalog of tens of
    # thousands of tables, filter on the one function that matters first, then read the view
    # for the few tables left.
    sql = """
        WITH dead AS MATERIALIZED (
            SELECT c.oid, pg_stat_get_dead_tuples(c.oid) AS n_dead
            FROM pg_class c
            WHERE c.relkind IN ('r', 'm', 'p')
              AND c.relnamespace NOT IN ('pg_catalog'::regnamespace,
                                         'information_schema'::regnamespace)
        ), top AS MATERIALIZED (
            SELECT dead.oid, dead.n_dead FROM dead WHERE dead.n_dead >= %(min_dead)s
            ORDER BY dead.n_dead DESC LIMIT %(limit)s
        )
        SELECT s.relid::bigint AS relid, s.schemaname AS schema, s.relname AS table,
               s.n_live_tup, s.n_dead_tup,
               round(100.0 * s.n_dead_tup / NULLIF(s.n_live_tup + s.n_dead_tup, 0), 2)::float
                   AS dead_pct,
               c.relpages::bigint * current_setting('block_size')::bigint AS approx_bytes,
               s.last_vacuum, s.last_autovacuum, s.last_analyze, s.last_autoanalyze,
               s.vacuum_count, s.autovacuum_count,
               EXTRACT(EPOCH FROM clock_timestamp()
                   - GREATEST(s.last_vacuum, s.last_autovacuum))::float AS since_vacuum_s,
               COALESCE(c.reloptions::text[] @> ARRAY['autovacuum_enabled=false']
                        OR c.reloptions::text[] @> ARRAY['autovacuum_enabled=off'], false)
                   AS autovacuum_disabled
        FROM top
        JOIN pg_stat_user_tables s ON s.relid = top.oid
        JOIN pg_class c ON c.oid = top.oid
        ORDER BY top.n_dead DESC
    """
    default_thresholds = {
        "warning_pct": 20.0,
        "critical_pct": 50.0,
        "min_dead_tuples": 1000,
        "vacuum_warning_age_s": 86400,
        "limit": 50,
        "measure_top": 10,  # tables (most dead tuples first) whose dead bytes are measured
        "use_pgstattuple": True,
    }
    # relpages is 0 until the first VACUUM or ANALYZE: a table filled and emptied since shows
    # "0 B" of dead space from the catalog alone. These measure it, one table at a time
    # (TargetSession.read_relation: they take ACCESS SHARE, a locked table is skipped).
    size_sql = "SELECT pg_relation_size(%(oid)s::oid) AS bytes"
    pgstattuple_sql = (
        "SELECT dead_tuple_len AS dead_bytes, table_len AS bytes "
        "FROM {schema}.pgstattuple_approx(%(oid)s::oid::regclass)"
    )

    def _dead_bytes(self, session, r: dict, oid: int, pgstattuple: dict | None) -> None:
        """Fill r["approx_dead_bytes"] and say where it came from."""
        pct = r["dead_pct"] or 0.0
        if pgstattuple is not None:
            try:
                read = session.read_relation(
                    self.pgstattuple_sql.format(schema=quote_ident(pgstattuple["schema"])),
                    {"oid": oid},
                )
            except psycopg.Error as exc:  # no EXECUTE (needs pg_stat_scan_tables), odd relkind
                r["pgstattuple_error"] = exc.diag.message_primary or str(exc)
            else:
                if read is None:
                    return self._from_catalog(r, pct, locked=True)
                r["approx_dead_bytes"] = int(read[0]["dead_bytes"])
                r["table_bytes"] = int(read[0]["bytes"])
                r["dead_bytes_source"] = "pgstattuple_approx"
                return None
        read = session.read_relation(self.size_sql, {"oid": oid})
        if read is None:
            return self._from_catalog(r, pct, locked=True)
        r["table_bytes"] = int(read[0]["bytes"])
        r["approx_dead_bytes"] = int(r["table_bytes"] * pct / 100)
        r["dead_bytes_source"] = "table size x dead ratio (pg_relation_size)"
        return None

    @staticmethod
    def _from_catalog(r: dict, pct: float, *, locked: bool = False) -> None:
        r["approx_dead_bytes"] = int((r["approx_bytes"] or 0) * pct / 100)
        r["dead_bytes_source"] = "catalog estimate x dead ratio (relpages)" + (
            ": table held or awaited in ACCESS EXCLUSIVE, not measured" if locked else ""
        )

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        found = rows(
            session.query(
                self.sql, {"min_dead": int(t["min_dead_tuples"]), "limit": int(t["limit"])}
            )
        )
        locked = session.exclusively_locked_relations() if found else {}
        pgstattuple = session.extension("pgstattuple") if t["use_pgstattuple"] else None
        status = CheckStatus.OK
        flagged = []
        for n, r in enumerate(found):  # found is ordered by dead tuples, most first
            pct = r["dead_pct"] or 0.0
            oid = r.pop("relid")
            if n >= int(t["measure_top"]):
                self._from_catalog(r, pct)
            elif oid in locked:
                self._from_catalog(r, pct, locked=True)
            else:
                self._dead_bytes(session, r, oid, pgstattuple)
            r["status"] = str(by_threshold(pct, float(t["warning_pct"]), float(t["critical_pct"])))
            if r["status"] != CheckStatus.OK:
                flagged.append(r)
                status = escalate(status, CheckStatus(r["status"]))
                never_or_old = r["since_vacuum_s"] is None or r["since_vacuum_s"] > float(
                    t["vacuum_warning_age_s"]
                )
                r["vacuum_overdue"] = never_or_old
        found.sort(key=lambda r: -(r["dead_pct"] or 0))
        if flagged:
            worst = max(flagged, key=lambda r: r["dead_pct"])
            last = (
                "never vacuumed"
                if worst["since_vacuum_s"] is None
                else f"last vacuum {human_seconds(worst['since_vacuum_s'])} ago"
            )
            summary = (
                f"{len(flagged)} table{'s' if len(flagged) != 1 else ''} with >= "
                f"{t['warning_pct']} % dead tuples; worst {worst['schema']}."
                f"{worst['table']} {worst['dead_pct']} % ({worst['n_dead_tup']:,} dead, "
                f"~{human_bytes(worst['approx_dead_bytes'])} by "
                f"{worst['dead_bytes_source'].split(' (')[0].split(':')[0]}, {last}"
                + (", autovacuum disabled" if worst["autovacuum_disabled"] else "")
                + ")"
            )
        else:
            summary = f"no table with >= {t['warning_pct']} % dead tuples"
        total_dead = sum(r["n_dead_tup"] or 0 for r in found)
        return CheckOutcome(
            status,
            summary,
            findings=found,
            metrics={
                "dead_tuples_top": total_dead,
                "bloated_tables": len(flagged),
                "dead_bytes_top": sum(r["approx_dead_bytes"] for r in found),
            },
        )


@register
class WraparoundCheck(Check):
    key = "xid_wraparound"
    title = "Transaction-id wraparound"
    family = Family.MAINTENANCE
    description = (
        "Age of the oldest unfrozen transaction id (and multixact) per database, against "
        "check_postgres' 1.3 / 1.4 billion and against autovacuum_freeze_max_age (past twice "
        "that, anti-wraparound autovacuum is not keeping up). Oldest tables of this database."
    )
    sql = """
        SELECT d.datname AS database, age(d.datfrozenxid)::bigint AS xid_age,
               mxid_age(d.datminmxid)::bigint AS mxid_age,
               round(100.0 * age(d.datfrozenxid) / %(limit)s, 2)::float AS pct_to_wraparound
        FROM pg_database d ORDER BY age(d.datfrozenxid) DESC
    """
    tables_sql = """
        SELECT n.nspname AS schema, c.relname AS table, age(c.relfrozenxid)::bigint AS xid_age,
               mxid_age(c.relminmxid)::bigint AS mxid_age
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'::xid
        ORDER BY age(c.relfrozenxid) DESC LIMIT %(top)s
    """
    default_thresholds = {
        "warning_age": 1_300_000_000,
        "critical_age": 1_400_000_000,
        "freeze_max_age_factor": 2.0,
        "top": 5,
    }

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        dbs = rows(session.query(self.sql, {"limit": XID_LIMIT}))
        tables = rows(session.query(self.tables_sql, {"top": int(t["top"])}))
        freeze_max = session.setting_int("autovacuum_freeze_max_age", 200_000_000)
        mxid_freeze_max = session.setting_int("autovacuum_multixact_freeze_max_age", 400_000_000)
        status = CheckStatus.OK
        notes = []
        for d in dbs:
            age = max(d["xid_age"] or 0, d["mxid_age"] or 0)
            d["status"] = str(by_threshold(age, t["warning_age"], t["critical_age"]))
            behind = (d["xid_age"] or 0) > freeze_max * float(t["freeze_max_age_factor"]) or (
                d["mxid_age"] or 0
            ) > mxid_freeze_max * float(t["freeze_max_age_factor"])
            d["autovacuum_behind"] = behind
            if behind and d["status"] == CheckStatus.OK:
                d["status"] = str(CheckStatus.WARNING)
                notes.append(
                    f"{d['database']} past {t['freeze_max_age_factor']}x autovacuum_freeze_max_age"
                )
            status = escalate(status, CheckStatus(d["status"]))
        oldest = dbs[0] if dbs else {"database": "?", "xid_age": 0, "pct_to_wraparound": 0}
        summary = (
            f"oldest xid age {oldest['xid_age']:,} in {oldest['database']} "
            f"({oldest['pct_to_wraparound']} % of the way to wraparound; "
            f"autovacuum_freeze_max_age {freeze_max:,})"
        )
        if notes:
            summary += "; " + "; ".join(notes)
        findings = [{"scope": "database", **d} for d in dbs]
        findings += [{"scope": "table", **r} for r in tables]
        return CheckOutcome(
            status,
            summary,
            findings=findings,
            metrics={"max_xid_age": float(oldest["xid_age"] or 0)},
        )


@register
class InvalidIndexesCheck(Check):
    key = "invalid_indexes"
    title = "Invalid indexes"
    family = Family.MAINTENANCE
    verifies_definition = True
    description = (
        "Indexes left invalid by a failed CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY: "
        "not used by queries yet still maintained on every write. Indexes being built right "
        "now (pg_stat_progress_create_index) are skipped. Found from the catalog without "
        "locks, so they are reported during a lock incident too."
    )
    sql = """
        WITH building AS MATERIALIZED (
            SELECT p.index_relid, p.relid, p.command, p.phase FROM pg_stat_progress_create_index p
        )
        SELECT n.nspname AS schema, ic.relname AS index, tc.relname AS table,
               i.indisunique AS is_unique, i.indisready AS is_ready, i.indislive AS is_live,
               am.amname AS method, i.indexrelid::bigint AS oid,
               -- Key columns from pg_attribute (no lock); 0 in indkey is an expression.
               ARRAY(SELECT COALESCE(a.attname::text, '(expression)')
                     FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                     LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                     ORDER BY k.ord) AS columns,
               (i.indexrelid::bigint = ANY(%(locked)s::bigint[])
                OR i.indrelid::bigint = ANY(%(locked)s::bigint[])) AS catalog_locked,
               ic.relpages::bigint * current_setting('block_size')::bigint AS approx_bytes
        FROM pg_index i
        JOIN pg_class ic ON ic.oid = i.indexrelid
        JOIN pg_class tc ON tc.oid = i.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        LEFT JOIN pg_am am ON am.oid = ic.relam
        WHERE NOT i.indisvalid
          AND NOT pg_is_other_temp_schema(n.oid)
          AND i.indexrelid NOT IN (SELECT b.index_relid FROM building b WHERE b.index_relid <> 0)
          AND i.indrelid NOT IN (SELECT b.relid FROM building b WHERE b.index_relid = 0)
        ORDER BY n.nspname, ic.relname
        LIMIT 200
    """
    building_sql = "SELECT count(*) FROM pg_stat_progress_create_index"
    # pg_get_indexdef opens the table (ACCESS SHARE): one index at a time, with a short
    # lock_timeout, for at most `definitions` indexes; the catalog columns above need no lock.
    definition_sql = "SELECT pg_get_indexdef(%(oid)s::oid) AS definition"
    default_thresholds = {"definitions": 20}

    def run(self, session) -> CheckOutcome:
        locked = list(session.exclusively_locked_relations())
        found = rows(session.query(self.sql, {"locked": locked}))
        building = int(session.scalar(self.building_sql) or 0)
        for n, r in enumerate(found):
            oid = r.pop("oid")
            r["definition"] = None
            if not r["catalog_locked"] and n < int(self.thresholds["definitions"]):
                read = session.read_relation(self.definition_sql, {"oid": oid})
                if read is None:
                    r["catalog_locked"] = True
                else:
                    r["definition"] = read[0]["definition"]
            if r["catalog_locked"]:
                r["note"] = (
                    "table held or awaited in ACCESS EXCLUSIVE by another session: "
                    "definition not read (method and columns from the catalog)"
                )
            qualified = f'"{r["schema"]}"."{r["index"]}"'
            r["fix"] = (
                f"REINDEX INDEX CONCURRENTLY {qualified};  -- or DROP INDEX "
                f"CONCURRENTLY {qualified}; and create it again"
            )
        suffix = (
            f" ({building} index build{'s' if building != 1 else ''} in progress skipped)"
            if building
            else ""
        )
        if not found:
            return CheckOutcome(
                CheckStatus.OK, "no invalid index" + suffix, metrics={"invalid_indexes": 0}
            )
        names = ", ".join(f"{r['schema']}.{r['index']}" for r in found[:5])
        locked_count = sum(1 for r in found if r["catalog_locked"])
        if locked_count:
            suffix += f"; {locked_count} on catalog-locked tables (definition not read)"
        return CheckOutcome(
            CheckStatus.WARNING,
            f"{len(found)} invalid index{'es' if len(found) != 1 else ''}: {names}" + suffix,
            findings=found,
            fix=found[0]["fix"],
            metrics={"invalid_indexes": len(found)},
        )


@register
class SequenceExhaustionCheck(Check):
    key = "sequence_exhaustion"
    title = "Sequences near exhaustion"
    family = Family.MAINTENANCE
    description = (
        "How much of its range each sequence has used, measured against the smaller of the "
        "sequence's own limit and the type of the column it feeds (a bigint sequence behind "
        "an integer column runs out at 2^31-1). Exclusively locked sequences are not read."
    )
    sql = """
        WITH seq AS (
            SELECT c.oid, n.nspname AS schema, c.relname AS sequence, s.seqtypid::regtype::text
                   AS data_type, s.seqmin, s.seqmax, s.seqincrement, s.seqcycle,
                   has_sequence_privilege(c.oid, 'SELECT,USAGE') AS readable,
                   c.oid::bigint = ANY(%(locked)s::bigint[]) AS catalog_locked
            FROM pg_sequence s
            JOIN pg_class c ON c.oid = s.seqrelid
            JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE NOT pg_is_other_temp_schema(n.oid)
        ), cols AS (  -- the columns a sequence feeds: OWNED BY / identity, or a DEFAULT nextval
            SELECT d.objid AS seq, d.refobjid AS tbl, d.refobjsubid AS attnum
            FROM pg_depend d JOIN seq ON seq.oid = d.objid
            WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
            UNION ALL
            SELECT d.refobjid, ad.adrelid, ad.adnum
            FROM pg_depend d
            JOIN seq ON seq.oid = d.refobjid
            JOIN pg_attrdef ad ON ad.oid = d.objid
            WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
        ), col_types AS (
            SELECT cols.seq, min(CASE a.atttypid WHEN 'int2'::regtype THEN 32767
                                                 WHEN 'int4'::regtype THEN 2147483647
                                                 ELSE 9223372036854775807 END) AS col_max,
                   max(CASE a.atttypid WHEN 'int2'::regtype THEN -32768
                                       WHEN 'int4'::regtype THEN -2147483648
                                       ELSE -9223372036854775808 END) AS col_min
            FROM cols
            CROSS JOIN LATERAL (  -- index lookups, not a hash of all of pg_attribute
                SELECT a.atttypid, a.atttypmod, a.attname FROM pg_attribute a
                WHERE a.attrelid = cols.tbl AND a.attnum = cols.attnum
            ) a
            GROUP BY cols.seq
        )
        SELECT seq.schema, seq.sequence, seq.data_type, seq.seqmin AS min_value,
               seq.seqmax AS max_value, seq.seqincrement AS increment_by, seq.seqcycle AS cycle,
               seq.oid::bigint AS oid, seq.readable, seq.catalog_locked,
               LEAST(seq.seqmax, COALESCE(ct.col_max, seq.seqmax)) AS effective_max,
               GREATEST(seq.seqmin, COALESCE(ct.col_min, seq.seqmin)) AS effective_min,
               CASE WHEN seq.readable AND NOT seq.catalog_locked AND (
                        %(read_wide)s OR seq.seqincrement NOT BETWEEN -1000 AND 1000
                        OR LEAST(seq.seqmax, COALESCE(ct.col_max, seq.seqmax))::numeric
                           - GREATEST(seq.seqmin, COALESCE(ct.col_min, seq.seqmin))::numeric
                           < %(wide_range)s::numeric)
                    THEN pg_sequence_last_value(seq.oid) END AS last_value,
               LEAST(seq.seqmax, COALESCE(ct.col_max, seq.seqmax))::numeric
                - GREATEST(seq.seqmin, COALESCE(ct.col_min, seq.seqmin))::numeric
                   >= %(wide_range)s::numeric AS wide
        FROM seq LEFT JOIN col_types ct ON ct.seq = seq.oid
    """
    count_sql = "SELECT count(*) FROM pg_sequence"
    # Named only for the sequences reported (text building is costly across 10,000 of them).
    columns_sql = """
        SELECT d.objid::bigint AS seq, string_agg(DISTINCT d.refobjid::regclass::text || '.'
               || quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ')
               AS columns
        FROM (
            SELECT objid, refobjid, refobjsubid FROM pg_depend
            WHERE classid = 'pg_class'::regclass AND refclassid = 'pg_class'::regclass
              AND deptype IN ('a', 'i') AND refobjsubid > 0 AND objid = ANY(%(oids)s::oid[])
            UNION ALL
            SELECT d.refobjid, ad.adrelid, ad.adnum
            FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
            WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
              AND d.refobjid = ANY(%(oids)s::oid[])
        ) d
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        GROUP BY d.objid
    """
    # Reading a sequence's position opens it (a lock and a buffer read each). A sequence with
    # a wide range (2^48+ values, i.e. bigint ones with the default limits) cannot realistically
    # run out; when there are more sequences than `read_all_max`, only the narrow ones (integer
    # columns, custom MAXVALUE, big increments) are read, and the summary says so.
    default_thresholds = {
        "warning_pct": 85.0,
        "critical_pct": 95.0,
        "report_pct": 50.0,
        "limit": 50,
        "read_all_max": 1000,
        "wide_range": 2**48,
    }

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        locked = list(session.exclusively_locked_relations())
        read_wide = int(session.scalar(self.count_sql) or 0) <= int(t["read_all_max"])
        all_rows = rows(
            session.query(
                self.sql,
                {"locked": locked, "read_wide": read_wide, "wide_range": int(t["wide_range"])},
            )
        )
        not_read = (
            sum(
                1
                for r in all_rows
                if r["wide"]
                and r["last_value"] is None
                and r["readable"]
                and not r["catalog_locked"]
            )
            if not read_wide
            else 0
        )
        status = CheckStatus.OK
        findings, unreadable, locked_rows = [], [], []
        for r in all_rows:
            if r["catalog_locked"]:
                locked_rows.append(r)
                continue
            if not r["readable"]:
                unreadable.append(r)
                continue
            if not read_wide and r["wide"] and r["last_value"] is None:
                continue  # not read: see read_all_max
            last = r["last_value"]
            inc = r["increment_by"]
            if inc > 0:
                start, end = r["min_value"], r["effective_max"]
                used = (last - start) if last is not None else 0
            else:
                start, end = r["max_value"], r["effective_min"]
                used = (start - last) if last is not None else 0
            span = abs(end - start) or 1
            r["used_pct"] = round(100.0 * used / span, 2)
            r["remaining"] = abs(end - last) // abs(inc) if last is not None else abs(span)
            r["limited_by_column"] = r["effective_max" if inc > 0 else "effective_min"] != (
                r["max_value"] if inc > 0 else r["min_value"]
            )
            if r["cycle"]:
                r["status"] = str(CheckStatus.OK)  # cycles instead of failing
            else:
                r["status"] = str(by_threshold(r["used_pct"], t["warning_pct"], t["critical_pct"]))
            status = escalate(status, CheckStatus(r["status"]))
            if r["used_pct"] >= float(t["report_pct"]):
                findings.append(r)
        findings.sort(key=lambda r: -r["used_pct"])
        findings = findings[: int(t["limit"])]
        if findings:
            columns = {
                r["seq"]: r["columns"]
                for r in session.query(self.columns_sql, {"oids": [f["oid"] for f in findings]})
            }
            for f in findings:
                f["columns"] = columns.get(f["oid"])
        flagged = [r for r in findings if r["status"] != CheckStatus.OK]
        if flagged:
            w = flagged[0]
            summary = (
                f"{len(flagged)} sequence{'s' if len(flagged) != 1 else ''} near "
                f"exhaustion; worst {w['schema']}.{w['sequence']} at {w['used_pct']} % "
                f"({w['remaining']:,} values left"
                + (f", limited by {w['columns']}" if w["limited_by_column"] else "")
                + ")"
            )
        else:
            summary = f"no sequence past {t['warning_pct']} % of its range"
        for r in locked_rows:
            findings.append(
                {
                    "schema": r["schema"],
                    "sequence": r["sequence"],
                    "status": "skipped",
                    "catalog_locked": True,
                    "note": "held in ACCESS EXCLUSIVE by another session: not read",
                }
            )
        if locked_rows:
            summary += f"; {len(locked_rows)} catalog locked, not read"
        if not_read:
            summary += (
                f"; {not_read} wide-range (bigint) sequences not read: more than "
                f"{t['read_all_max']} sequences, and 2^48+ values cannot run out in practice"
            )
        outcome = CheckOutcome(
            status, summary, findings=findings, metrics={"sequences_flagged": len(flagged)}
        )
        if unreadable:
            schemas = sorted({r["schema"] for r in unreadable})
            fix = " ".join(
                f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {session.current_user};"
                for s in schemas
            )
            outcome = with_coverage_gap(
                outcome, hidden=len(unreadable), what="sequences are", fix=fix
            )
        return outcome


@register
class UnusedIndexesCheck(Check):
    key = "unused_indexes"
    title = "Unused indexes"
    family = Family.MAINTENANCE
    description = (
        "Indexes of at least 10 MB never scanned since statistics were reset (PgHero's rule): "
        "they slow every write. Unique, primary-key and constraint indexes are left out, and "
        "scans on replicas are not counted here, so confirm there before dropping. "
        "Informational unless `as_warning` is set."
    )
    sql = """
        WITH big AS MATERIALIZED (  -- size first (no stats call), statistics for the few left
            SELECT i.indexrelid, i.indrelid,
                   ic.relpages::bigint * current_setting('block_size')::bigint AS approx_bytes
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
              AND ic.relpages::bigint * current_setting('block_size')::bigint >= %(min_bytes)s
              AND ic.relnamespace NOT IN ('pg_catalog'::regnamespace,
                                          'information_schema'::regnamespace)
              AND NOT EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid)
        )
        SELECT n.nspname AS schema, ic.relname AS index, tc.relname AS table, big.approx_bytes,
               pg_stat_get_numscans(big.indexrelid) AS scans,
               (SELECT stats_reset FROM pg_stat_database
                WHERE datname = current_database()) AS stats_reset
        FROM big
        JOIN pg_class ic ON ic.oid = big.indexrelid
        JOIN pg_class tc ON tc.oid = big.indrelid
        JOIN pg_namespace n ON n.oid = ic.relnamespace
        WHERE pg_stat_get_numscans(big.indexrelid) = 0
        ORDER BY big.approx_bytes DESC
        LIMIT %(limit)s
    """
    default_thresholds = {"min_bytes": 10 * 1024 * 1024, "limit": 50, "as_warning": False}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        found = rows(
            session.query(self.sql, {"min_bytes": int(t["min_bytes"]), "limit": int(t["limit"])})
        )
        if not found:
            return CheckOutcome(
                CheckStatus.OK,
                f"no unused index of {human_bytes(t['min_bytes'])} or more",
                metrics={"unused_indexes": 0},
            )
        for r in found:
            r["fix"] = f'DROP INDEX CONCURRENTLY "{r["schema"]}"."{r["index"]}";'
        total = sum(r["approx_bytes"] or 0 for r in found)
        return CheckOutcome(
            CheckStatus.WARNING if t["as_warning"] else CheckStatus.OK,
            f"{len(found)} unused index{'es' if len(found) != 1 else ''} (~{human_bytes(total)}"
            f"), largest {found[0]['schema']}.{found[0]['index']}: candidates to drop after "
            "checking replicas",
            findings=found,
            metrics={"unused_indexes": len(found), "unused_bytes": total},
        )


@register
class DuplicateIndexesCheck(Check):
    key = "duplicate_indexes"
    title = "Duplicate indexes"
    family = Family.MAINTENANCE
    verifies_definition = True
    description = (
        "Indexes whose columns are a leading prefix of another index on the same table (same "
        "method and operator classes, no expressions or predicates): the longer one serves "
        "the same queries. A unique index is never reported as the redundant one. "
        "Informational unless `as_warning` is set."
    )
    sql = """
        WITH idx AS MATERIALIZED (
            SELECT i.indexrelid, i.indrelid, i.indisunique, i.indkey::text AS keys,
                   i.indclass::text AS classes, ic.relam,
                   ic.relpages::bigint * current_setting('block_size')::bigint AS approx_bytes
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE i.indisvalid AND i.indexprs IS NULL AND i.indpred IS NULL
              AND ic.relnamespace NOT IN ('pg_catalog'::regnamespace,
                                          'information_schema'::regnamespace)
        )
        SELECT n.nspname AS schema, tc.relname AS table, dc.relname AS index,
               kc.relname AS covered_by, d.approx_bytes
        FROM idx d
        JOIN idx k ON k.indrelid = d.indrelid AND k.indexrelid <> d.indexrelid
                  AND k.relam = d.relam
                  AND (k.keys || ' ') LIKE (d.keys || ' %%')
                  AND (k.classes || ' ') LIKE (d.classes || ' %%')
                  -- equal column lists: report only one of the pair
                  AND (k.keys <> d.keys OR k.indexrelid < d.indexrelid OR k.indisunique)
        JOIN pg_class dc ON dc.oid = d.indexrelid
        JOIN pg_class kc ON kc.oid = k.indexrelid
        JOIN pg_class tc ON tc.oid = d.indrelid
        JOIN pg_namespace n ON n.oid = dc.relnamespace
        WHERE NOT d.indisunique
        ORDER BY d.approx_bytes DESC, n.nspname, dc.relname
        LIMIT %(limit)s
    """
    default_thresholds = {"limit": 50, "as_warning": False}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        found = rows(session.query(self.sql, {"limit": int(t["limit"])}))
        if not found:
            return CheckOutcome(
                CheckStatus.OK, "no duplicate index", metrics={"duplicate_indexes": 0}
            )
        seen, unique_rows = set(), []
        for r in found:  # an index covered by several others is listed once
            if (r["schema"], r["index"]) not in seen:
                seen.add((r["schema"], r["index"]))
                r["fix"] = f'DROP INDEX CONCURRENTLY "{r["schema"]}"."{r["index"]}";'
                unique_rows.append(r)
        first = unique_rows[0]
        return CheckOutcome(
            CheckStatus.WARNING if t["as_warning"] else CheckStatus.OK,
            f"{len(unique_rows)} duplicate index{'es' if len(unique_rows) != 1 else ''}: "
            f"{first['schema']}.{first['index']} is covered by {first['covered_by']}",
            findings=unique_rows,
            metrics={"duplicate_indexes": len(unique_rows)},
        )
