"""Slow queries (pg_stat_statements) and cache hit ratio."""

from __future__ import annotations

from ..target import quote_ident
from ..target_probe import pg_stat_statements_state
from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import HIDDEN_QUERY, QUERY_TEXT_LIMIT, by_threshold, escalate, rows, version_tuple


def statements_columns(extversion: str) -> dict[str, str]:
    """Column names by the EXTENSION's version (not the server's).

    1.8 (PostgreSQL 13) renamed total_time/mean_time to total_exec_time/mean_exec_time;
    1.11 (PostgreSQL 17) renamed blk_read_time/blk_write_time to shared_blk_*_time.
    """
    v = version_tuple(extversion)
    cols = {
        "total": "total_time",
        "mean": "mean_time",
        "blk_read": "blk_read_time",
        "blk_write": "blk_write_time",
    }
    if v >= (1, 8):
        cols.update(total="total_exec_time", mean="mean_exec_time")
    if v >= (1, 11):
        cols.update(blk_read="shared_blk_read_time", blk_write="shared_blk_write_time")
    return cols


@register
class SlowQueriesCheck(Check):
    key = "slow_queries"
    title = "Slow queries (pg_stat_statements)"
    family = Family.PERFORMANCE
    description = (
        "Statements ranked by mean time and by share of this database's total execution time, "
        "with calls and rows. Three rules flag a statement: PgHero's (mean >= 20 ms over >= "
        "100 calls); a critical mean whatever the call count (an UPDATE averaging 1 s over 3 "
        "calls is not hidden by the call floor); and a share of the total execution time "
        "(during an incident a statement matters by the time it takes from everyone). Column "
        "names follow the extension's version; skipped with the fix when the extension is not "
        "installed, not created or not preloaded."
    )
    default_thresholds = {
        "slow_mean_ms": 20.0,
        "min_calls": 100,
        "critical_mean_ms": 1000.0,  # critical whatever the call count
        "share_warning_pct": 25.0,  # of this database's total execution time
        "share_critical_pct": 75.0,
        "share_min_total_ms": 10000.0,  # a share counts once the statement took this long
        "top": 10,
    }

    @staticmethod
    def sql_for(schema: str, extversion: str) -> str:
        c = statements_columns(extversion)
        # The share is of every statement of this database, Quell's own included (they are
        # time the server spent too); only the rankings leave Quell's statements out.
        return f"""
            WITH every AS (
                SELECT queryid::text AS queryid, userid::regrole::text AS user, calls,
                       {c["total"]} AS total_ms, {c["mean"]} AS mean_ms, rows,
                       round((100.0 * {c["total"]}
                              / NULLIF(sum({c["total"]}) OVER (), 0))::numeric, 2)::float
                           AS share_pct,
                       {c["blk_read"]} AS blk_read_ms, {c["blk_write"]} AS blk_write_ms,
                       shared_blks_hit, shared_blks_read, temp_blks_written,
                       left(query, {QUERY_TEXT_LIMIT}) AS query
                FROM {quote_ident(schema)}.pg_stat_statements
                WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
            ), s AS (
                SELECT * FROM every WHERE query NOT LIKE '%%quell-diagnostics%%'
            )
            (SELECT 'mean' AS ranking, s.* FROM s ORDER BY s.mean_ms DESC LIMIT %(top)s)
            UNION ALL
            (SELECT 'total' AS ranking, s.* FROM s ORDER BY s.total_ms DESC LIMIT %(top)s)
        """

    sql = sql_for("public", "1.11")  # for display; run() uses the extension's version and schema

    hidden_sql_tpl = """
        SELECT count(*) FILTER (WHERE query = %(hidden)s OR queryid IS NULL) AS hidden,
               count(*) AS total, sum(calls) AS calls, sum({total}) AS total_ms
        FROM {schema}.pg_stat_statements
        WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
    """

    def flags_for(self, r: dict) -> dict[str, CheckStatus]:
        """The rules a statement breaks, each with the status it deserves."""
        t = self.thresholds
        mean, calls = r["mean_ms"] or 0.0, r["calls"] or 0
        share, total = r["share_pct"] or 0.0, r["total_ms"] or 0.0
        flags: dict[str, CheckStatus] = {}
        if mean >= float(t["critical_mean_ms"]):
            flags["critical_mean"] = CheckStatus.CRITICAL
        elif calls >= int(t["min_calls"]) and mean >= float(t["slow_mean_ms"]):
            flags["slow_mean"] = CheckStatus.WARNING
        if total >= float(t["share_min_total_ms"]):
            status = by_threshold(
                share, float(t["share_warning_pct"]), float(t["share_critical_pct"])
            )
            if status != CheckStatus.OK:
                flags["share_of_total"] = status
        return flags

    def run(self, session) -> CheckOutcome:
        state = pg_stat_statements_state(session)
        if not state["readable"]:
            return CheckOutcome(
                CheckStatus.SKIPPED,
                state["reason"],
                fix=state["fix"],
                findings=[
                    {k: state[k] for k in ("available", "created", "readable", "version", "schema")}
                ],
            )
        t = self.thresholds
        schema, version = state["schema"], state["version"]
        found = rows(session.query(self.sql_for(schema, version), {"top": int(t["top"])}))
        totals = session.one(
            self.hidden_sql_tpl.format(
                schema=quote_ident(schema), total=statements_columns(version)["total"]
            ),
            {"hidden": HIDDEN_QUERY},
        )
        status = CheckStatus.OK
        flagged: dict[str, dict] = {}  # by queryid (a statement can be in both rankings)
        for r in found:
            flags = self.flags_for(r)
            r["flags"] = sorted(flags)
            r["slow"] = bool(flags)
            for flag_status in flags.values():
                status = escalate(status, flag_status)
            if flags:
                flagged.setdefault((r["queryid"], r["user"], r["query"]), r)
        summary = self._summary(found, list(flagged.values()))
        summary += f" (pg_stat_statements {version} in schema {schema})"
        outcome = CheckOutcome(
            status,
            summary,
            findings=found,
            metrics={
                "statements": int(totals["total"] or 0),
                "calls": float(totals["calls"] or 0),
                "total_exec_ms": float(totals["total_ms"] or 0),
            },
        )
        hidden = int(totals["hidden"] or 0)
        if hidden and not session.can_read_all_stats:
            status_before = outcome.status
            outcome.status = escalate(status_before, CheckStatus.WARNING)
            outcome.summary += (
                f"; {hidden} statements of other roles hidden "
                "(<insufficient privilege>, NULL queryid): coverage gap"
            )
            outcome.fix = session.monitor_fix
            outcome.findings.append(
                {
                    "coverage_gap": "statements of other roles hidden",
                    "hidden": hidden,
                    "fix": session.monitor_fix,
                }
            )
        return outcome

    def _summary(self, found: list[dict], flagged: list[dict]) -> str:
        t = self.thresholds
        by_mean = next((r for r in found if r["ranking"] == "mean"), None)
        by_total = next((r for r in found if r["ranking"] == "total"), None)
        parts = []
        if flagged:
            critical = [r for r in flagged if "critical_mean" in r["flags"]]
            shares = [r for r in flagged if "share_of_total" in r["flags"]]
            slow = [r for r in flagged if "slow_mean" in r["flags"]]
            counts = []
            if critical:
                counts.append(f"{len(critical)} averaging >= {t['critical_mean_ms']:g} ms")
            if slow:
                counts.append(
                    f"{len(slow)} averaging >= {t['slow_mean_ms']:g} ms over >= "
                    f"{t['min_calls']} calls"
                )
            if shares:
                counts.append(
                    f"{len(shares)} taking >= {t['share_warning_pct']:g} % of execution time"
                )
            parts.append(
                f"{len(flagged)} statement{'s' if len(flagged) != 1 else ''} flagged ("
                + "; ".join(counts)
                + ")"
            )
        else:
            parts.append("no slow statement")
        if by_mean:
            parts.append(
                f"highest mean {by_mean['mean_ms']:.1f} ms x {by_mean['calls']} calls"
                f" ({_head(by_mean['query'])})"
            )
        if by_total:
            parts.append(
                f"largest share {by_total['share_pct'] or 0:g} % of execution time, "
                f"{by_total['total_ms']:.0f} ms over {by_total['calls']} calls"
                f" ({_head(by_total['query'])})"
            )
        return "; ".join(parts)


def _head(query: str | None, limit: int = 60) -> str:
    """The start of a statement's text, on one line, for a summary."""
    text = " ".join((query or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register
class CacheHitRatioCheck(Check):
    key = "cache_hit_ratio"
    title = "Cache hit ratio"
    family = Family.PERFORMANCE
    description = (
        "Share of block reads served from shared buffers for this database, overall and for "
        "tables and indexes. Below 99 % usually means the working set no longer fits in memory."
    )
    # The two statistics functions directly, not pg_statio_user_tables/indexes: those compute
    # every counter (and an index subquery) per table, slow on catalogs of 10,000+ tables.
    sql = """
        WITH user_rels AS MATERIALIZED (
            SELECT c.oid, c.relkind FROM pg_class c
            WHERE c.relkind IN ('r', 'm', 'i')
              AND c.relnamespace NOT IN ('pg_catalog'::regnamespace,
                                         'information_schema'::regnamespace)
              AND c.relnamespace NOT IN (SELECT oid FROM pg_namespace
                                         WHERE nspname LIKE 'pg_toast%%')
        )
        SELECT d.blks_hit, d.blks_read,
               round(100.0 * d.blks_hit / NULLIF(d.blks_hit + d.blks_read, 0), 3)::float
                   AS hit_pct,
               (SELECT round(100.0 * sum(pg_stat_get_blocks_hit(c.oid))
                             / NULLIF(sum(pg_stat_get_blocks_fetched(c.oid)), 0), 3)::float
                FROM user_rels c WHERE c.relkind IN ('r', 'm')) AS table_hit_pct,
               (SELECT round(100.0 * sum(pg_stat_get_blocks_hit(c.oid))
                             / NULLIF(sum(pg_stat_get_blocks_fetched(c.oid)), 0), 3)::float
                FROM user_rels c WHERE c.relkind = 'i') AS index_hit_pct,
               d.stats_reset
        FROM pg_stat_database d WHERE d.datname = current_database()
    """
    default_thresholds = {"warning_pct": 99.0, "critical_pct": 95.0, "min_blocks": 10000}

    def run(self, session) -> CheckOutcome:
        r = rows([session.one(self.sql, {})])[0]
        blocks = (r["blks_hit"] or 0) + (r["blks_read"] or 0)
        metrics = {"blks_hit": r["blks_hit"] or 0, "blks_read": r["blks_read"] or 0}
        if blocks < int(self.thresholds["min_blocks"]):
            return CheckOutcome(
                CheckStatus.OK,
                f"too few block reads so far ({blocks}) to judge the ratio",
                findings=[r],
                metrics=metrics,
            )
        status = by_threshold(
            r["hit_pct"],
            self.thresholds["warning_pct"],
            self.thresholds["critical_pct"],
            lower_is_worse=True,
        )
        summary = (
            f"cache hit ratio {r['hit_pct']} % (tables {r['table_hit_pct']} %, "
            f"indexes {r['index_hit_pct']} %)"
        )
        return CheckOutcome(status, summary, findings=[r], metrics=metrics)


@register
class CheckpointsCheck(Check):
    key = "checkpoints"
    title = "Checkpoints"
    family = Family.PERFORMANCE
    description = (
        "Timed versus requested checkpoints: many requested ones mean WAL volume forces them "
        "(max_wal_size too small), each one a burst of writes. PostgreSQL 17 moved these "
        "counters from pg_stat_bgwriter to pg_stat_checkpointer."
    )
    default_thresholds = {"requested_warning_pct": 50.0, "min_checkpoints": 10}

    @staticmethod
    def sql_for(version: int) -> str:
        if version >= 170000:
            return """
                SELECT num_timed, num_requested, write_time AS write_ms,
                       sync_time AS sync_ms, buffers_written, stats_reset,
                       'pg_stat_checkpointer' AS source
                FROM pg_stat_checkpointer
            """
        return """
            SELECT checkpoints_timed AS num_timed, checkpoints_req AS num_requested,
                   checkpoint_write_time AS write_ms, checkpoint_sync_time AS sync_ms,
                   buffers_checkpoint AS buffers_written, stats_reset,
                   'pg_stat_bgwriter' AS source
            FROM pg_stat_bgwriter
        """

    sql = sql_for(170000)  # for display; run() picks the view for the server version

    def run(self, session) -> CheckOutcome:
        r = rows([session.one(self.sql_for(session.server_version_num))])[0]
        total = (r["num_timed"] or 0) + (r["num_requested"] or 0)
        requested_pct = round(100.0 * (r["num_requested"] or 0) / total, 1) if total else 0.0
        r["requested_pct"] = requested_pct
        r["max_wal_size"] = session.setting("max_wal_size")
        r["checkpoint_timeout"] = session.setting("checkpoint_timeout")
        status = CheckStatus.OK
        summary = (
            f"{total} checkpoints since statistics reset, {requested_pct} % requested "
            f"(forced), max_wal_size {r['max_wal_size']} MB"
        )
        if total >= int(self.thresholds["min_checkpoints"]) and requested_pct >= float(
            self.thresholds["requested_warning_pct"]
        ):
            status = CheckStatus.WARNING
            summary = "most checkpoints are forced by WAL volume - " + summary
        metrics = {
            k: float(r[k] or 0)
            for k in ("num_timed", "num_requested", "write_ms", "sync_ms", "buffers_written")
        }
        return CheckOutcome(
            status,
            summary,
            findings=[r],
            metrics=metrics,
            fix="raise max_wal_size" if status == CheckStatus.WARNING else "",
        )
