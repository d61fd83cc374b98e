"""Sessions: connections against max_connections, long-running queries, idle in transaction.

All read pg_stat_activity, exclude Quell's own backend, and time with clock_timestamp() (now()
is frozen at the start of our read-only transaction). A role without pg_read_all_stats (part of
pg_monitor) sees other roles' sessions with a NULL state and `<insufficient privilege>` as the
query: those are counted as hidden and reported as a coverage gap, never as healthy.
"""

from __future__ import annotations

from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import (
    HIDDEN_QUERY,
    QUERY_TEXT_LIMIT,
    by_threshold,
    human_seconds,
    rows,
    with_coverage_gap,
)

# A session of another role whose details are hidden from us (client backends have a
# database and a role; background processes lack one or the other).
HIDDEN_SESSION = (
    f"(a.query = '{HIDDEN_QUERY}' AND a.state IS NULL AND a.datid IS NOT NULL "
    "AND a.usesysid IS NOT NULL)"
)

SESSION_COLUMNS = f"""
    a.pid, a.datname AS database, a.usename AS user, a.application_name,
    host(a.client_addr) AS client_addr, a.state, a.backend_type,
    a.wait_event_type, a.wait_event, left(a.query, {QUERY_TEXT_LIMIT}) AS query,
    a.backend_start, a.xact_start, a.query_start, a.state_change
"""


def hidden_sessions(session) -> int:
    """How many other roles' sessions this role cannot see into."""
    if session.can_read_all_stats:
        return 0
    return int(
        session.scalar(
            f"SELECT count(*) FROM pg_stat_activity a WHERE {HIDDEN_SESSION} "
            "AND a.pid <> pg_backend_pid()"
        )
        or 0
    )


@register
class ConnectionsCheck(Check):
    key = "connections"
    title = "Connections vs max_connections"
    family = Family.ACTIVITY
    description = (
        "Client connections by state, user, application and client address, against the "
        "slots non-superusers can use (max_connections minus superuser_reserved_connections "
        "and reserved_connections). Thresholds from check_postgres: 90 % / 95 %."
    )
    sql = f"""
        SELECT CASE WHEN GROUPING(a.state) = 0 THEN 'state'
                    WHEN GROUPING(a.usename) = 0 THEN 'user'
                    WHEN GROUPING(a.application_name) = 0 THEN 'application'
                    ELSE 'client' END AS dimension,
               COALESCE(a.state, a.usename::text, a.application_name,
                        host(a.client_addr)) AS value,
               count(*) AS connections
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND (a.backend_type = 'client backend' OR {HIDDEN_SESSION})
        GROUP BY GROUPING SETS ((a.state), (a.usename), (a.application_name), (host(a.client_addr)))
    """
    default_thresholds = {"warning_pct": 90.0, "critical_pct": 95.0, "top": 10}

    def run(self, session) -> CheckOutcome:
        groups = session.query(self.sql)
        by: dict[str, list[dict]] = {"state": [], "user": [], "application": [], "client": []}
        for g in groups:
            value = g["value"]
            if g["dimension"] == "state" and value is None:
                value = "(hidden)"
            if g["dimension"] == "client" and value is None:
                value = "(local socket or hidden)"
            by[g["dimension"]].append(
                {"value": value if value is not None else "", "connections": int(g["connections"])}
            )
        total = sum(x["connections"] for x in by["state"])
        max_conn = session.setting_int("max_connections")
        reserved = session.setting_int("superuser_reserved_connections") + session.setting_int(
            "reserved_connections"
        )  # 16+: pg_use_reserved_...
        usable = max(1, max_conn - reserved)
        pct = round(100.0 * total / usable, 1)
        status = by_threshold(pct, self.thresholds["warning_pct"], self.thresholds["critical_pct"])
        top = int(self.thresholds["top"])
        findings = [
            {
                "dimension": "total",
                "value": "client connections",
                "connections": total,
                "max_connections": max_conn,
                "reserved": reserved,
                "usable": usable,
                "utilisation_pct": pct,
            }
        ]
        for dimension, items in by.items():
            items.sort(key=lambda x: -x["connections"])
            findings += [{"dimension": dimension, **item} for item in items[:top]]
        states = ", ".join(f"{x['connections']} {x['value']}" for x in by["state"][:4])
        outcome = CheckOutcome(
            status=status,
            summary=f"{total} of {usable} usable connections ({pct} %)"
            + (f": {states}" if states else ""),
            findings=findings,
            metrics={"connections": total, "utilisation_pct": pct, "max_connections": max_conn},
        )
        hidden = next((x["connections"] for x in by["state"] if x["value"] == "(hidden)"), 0)
        if hidden and not session.can_read_all_stats:
            return with_coverage_gap(
                outcome, hidden=hidden, what="sessions' states are", fix=session.monitor_fix
            )
        return outcome


@register
class LongRunningQueriesCheck(Check):
    key = "long_running_queries"
    title = "Long-running queries"
    family = Family.ACTIVITY
    description = (
        "Active client queries running longer than the threshold (the playbook says 5 "
        "minutes; PgHero uses 60 s). The longest active queries are listed even below the "
        "threshold (marked over_threshold false), so a responder sees what runs now. Parallel "
        "workers are folded into their leader."
    )
    sql = f"""
        SELECT {SESSION_COLUMNS},
               EXTRACT(EPOCH FROM clock_timestamp() - a.query_start)::float AS duration_s,
               EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float AS xact_age_s
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND a.backend_type = 'client backend'
          AND a.state IN ('active', 'fastpath function call')
          AND a.query_start IS NOT NULL
        ORDER BY a.query_start
        LIMIT %(limit)s
    """
    # limit: at most this many queries past the threshold; top: the longest listed whatever
    # their duration.
    default_thresholds = {"threshold_s": 300.0, "critical_s": 1800.0, "limit": 50, "top": 5}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        threshold = float(t["threshold_s"])
        top = max(0, int(t["top"]))
        active = rows(session.query(self.sql, {"limit": max(int(t["limit"]), top)}))
        for r in active:
            r["over_threshold"] = (r["duration_s"] or 0) >= threshold
        found = [r for r in active if r["over_threshold"]][: int(t["limit"])]
        below = [r for r in active[:top] if not r["over_threshold"]]
        if found:
            longest = max(r["duration_s"] for r in found)
            status = by_threshold(longest, threshold, float(t["critical_s"]))
            first = found[0]
            summary = (
                f"{len(found)} quer{'y' if len(found) == 1 else 'ies'} running longer "
                f"than {human_seconds(threshold)}; longest "
                f"{human_seconds(longest)} (pid {first['pid']}, {first['user']})"
            )
        else:
            longest = 0.0
            status = CheckStatus.OK
            summary = f"no query running longer than {human_seconds(threshold)}"
            if below:
                summary += (
                    f"; longest active {human_seconds(below[0]['duration_s'])} "
                    f"(pid {below[0]['pid']}, {below[0]['user']}, below the threshold)"
                )
        outcome = CheckOutcome(
            status,
            summary,
            findings=found + below,
            metrics={
                "long_running": len(found),
                "longest_s": longest,
                "longest_active_s": active[0]["duration_s"] if active else 0.0,
            },
        )
        return with_coverage_gap(
            outcome,
            hidden=hidden_sessions(session),
            what="sessions of other roles are",
            fix=session.monitor_fix,
        )


@register
class IdleInTransactionCheck(Check):
    key = "idle_in_transaction"
    title = "Idle in transaction"
    family = Family.ACTIVITY
    description = (
        "Sessions holding a transaction open while doing nothing: they keep locks and stop "
        "vacuum from cleaning up. Counted; flagged past the threshold. Ending one needs "
        "pg_terminate_backend (a cancel does nothing to an idle session)."
    )
    sql = f"""
        SELECT {SESSION_COLUMNS},
               EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float AS idle_s,
               EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float AS xact_age_s,
               a.backend_xmin::text AS backend_xmin
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
        ORDER BY a.state_change
        LIMIT %(limit)s
    """
    count_sql = """
        SELECT count(*) FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
    """
    default_thresholds = {"threshold_s": 60.0, "critical_s": 600.0, "limit": 50}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        found = rows(session.query(self.sql, {"limit": int(t["limit"])}))
        count = int(session.scalar(self.count_sql) or 0)
        threshold = float(t["threshold_s"])
        for r in found:
            r["over_threshold"] = (r["idle_s"] or 0) >= threshold
        flagged = [r for r in found if r["over_threshold"]]
        oldest = max((r["idle_s"] or 0 for r in found), default=0.0)
        status = by_threshold(oldest, threshold, float(t["critical_s"]))
        if count:
            summary = (
                f"{count} session{'s' if count != 1 else ''} idle in transaction, "
                f"oldest {human_seconds(oldest)}"
            )
            if flagged:
                summary += f"; {len(flagged)} past {human_seconds(threshold)}"
        else:
            summary = "no session idle in transaction"
        outcome = CheckOutcome(
            status,
            summary,
            findings=found,
            metrics={"idle_in_transaction": count, "oldest_idle_s": oldest},
        )
        return with_coverage_gap(
            outcome,
            hidden=hidden_sessions(session),
            what="sessions of other roles are",
            fix=session.monitor_fix,
        )


@register
class PreparedTransactionsCheck(Check):
    key = "prepared_transactions"
    title = "Prepared transactions"
    family = Family.ACTIVITY
    description = (
        "Two-phase-commit transactions left prepared: they hold their locks and stop vacuum "
        "until a transaction manager commits or rolls them back, and survive restarts."
    )
    sql = """
        SELECT p.gid, p.database, p.owner, p.prepared, p.transaction::text AS xid,
               EXTRACT(EPOCH FROM clock_timestamp() - p.prepared)::float AS age_s
        FROM pg_prepared_xacts p ORDER BY p.prepared LIMIT %(limit)s
    """
    default_thresholds = {"warning_s": 1.0, "critical_s": 300.0, "limit": 50}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        found = rows(session.query(self.sql, {"limit": int(t["limit"])}))
        if not found:
            return CheckOutcome(
                CheckStatus.OK, "no prepared transaction", metrics={"prepared_transactions": 0}
            )
        oldest = max(r["age_s"] or 0 for r in found)
        for r in found:
            gid = (r["gid"] or "").replace("'", "''")
            r["fix"] = (
                f"COMMIT PREPARED '{gid}'; or ROLLBACK PREPARED '{gid}'; (in database "
                f"{r['database']}, once the transaction manager confirms the outcome)"
            )
        status = by_threshold(oldest, float(t["warning_s"]), float(t["critical_s"]))
        return CheckOutcome(
            status,
            f"{len(found)} prepared transaction{'s' if len(found) != 1 else ''}, oldest "
            f"{human_seconds(oldest)} ({found[0]['gid']} in {found[0]['database']})",
            findings=found,
            fix=found[0]["fix"],
            metrics={"prepared_transactions": len(found), "oldest_prepared_s": oldest},
        )
