"""Sessions: connections against max_connections, long-running queries, idle in transaction.

All read pg_stat_activity, exclude Quell's own backend, and time with clock_timestamp() (now()
is frozen at the start of our read-only transaction). A role without pg_read_all_stats (part of
pg_monitor) sees other roles' sessions with a NULL state and `<insufficient privilege>` as the
query: those are counted as hidden and reported as a coverage gap, never as healthy.
"""

from __future__ import annotations

from ..target import quote_ident
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
    # Broken down for this database's sessions; other databases of the same server only by
    # database (their sessions share max_connections, not the target's incident).
    sql = f"""
        SELECT CASE WHEN GROUPING(a.datname) = 0 THEN 'database'
                    WHEN GROUPING(a.state) = 0 THEN 'state'
                    WHEN GROUPING(a.usename) = 0 THEN 'user'
                    WHEN GROUPING(a.application_name) = 0 THEN 'application'
                    ELSE 'client' END AS dimension,
               a.datname IS NOT DISTINCT FROM current_database() AS own,
               COALESCE(a.datname::text, a.state, a.usename::text, a.application_name,
                        host(a.client_addr)) AS value,
               count(*) AS connections
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND (a.backend_type = 'client backend' OR {HIDDEN_SESSION})
        GROUP BY GROUPING SETS ((own, a.datname), (own, a.state), (own, a.usename),
                                (own, a.application_name), (own, host(a.client_addr)))
    """
    default_thresholds = {"warning_pct": 90.0, "critical_pct": 95.0, "top": 10}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        by: dict[str, list[dict]] = {"state": [], "user": [], "application": [], "client": []}
        databases: list[dict] = []
        hidden = 0
        for g in session.query(self.sql):
            value, dimension = g["value"], g["dimension"]
            if dimension == "database":
                databases.append(
                    {"value": value or "", "connections": int(g["connections"]), "own": g["own"]}
                )
                continue
            if not g["own"]:
                continue  # other databases: counted by database only
            if dimension == "state" and value is None:
                value = "(hidden)"
                hidden = int(g["connections"])
            if dimension == "client" and value is None:
                value = "(local socket or hidden)"
            by[dimension].append(
                {"value": value if value is not None else "", "connections": int(g["connections"])}
            )
        own_total = sum(d["connections"] for d in databases if d["own"])
        others = sorted((d for d in databases if not d["own"]), key=lambda d: -d["connections"])
        other_total = sum(d["connections"] for d in others)
        server_total = own_total + other_total
        max_conn = session.setting_int("max_connections")
        reserved = session.setting_int("superuser_reserved_connections") + session.setting_int(
            "reserved_connections"
        )  # 16+: pg_use_reserved_...
        usable = max(1, max_conn - reserved)
        pct = round(100.0 * own_total / usable, 1)
        server_pct = round(100.0 * server_total / usable, 1)
        # Graded by the target's own sessions...
        status = by_threshold(pct, t["warning_pct"], t["critical_pct"])
        top = int(t["top"])
        database = session.current_database
        findings = [
            {
                "dimension": "total",
                "scope": "target",
                "value": f"client connections to {database}",
                "connections": own_total,
                "max_connections": max_conn,
                "reserved": reserved,
                "usable": usable,
                "utilisation_pct": pct,
            },
            {
                "dimension": "total",
                "scope": "server",
                "value": "client connections to every database of the server",
                "connections": server_total,
                "other_databases": other_total,
                "usable": usable,
                "utilisation_pct": server_pct,
            },
        ]
        for dimension, items in by.items():
            items.sort(key=lambda x: -x["connections"])
            findings += [
                {"dimension": dimension, "scope": "target", **item} for item in items[:top]
            ]
        findings += [
            {
                "dimension": "database",
                "scope": "other_database",
                "value": d["value"],
                "connections": d["connections"],
            }
            for d in others[:top]
        ]
        states = ", ".join(f"{x['connections']} {x['value']}" for x in by["state"][:4])
        summary = f"{own_total} of {usable} usable connections to {database} ({pct} %)" + (
            f": {states}" if states else ""
        )
        if others:
            summary += (
                f"; other databases on the server: {other_total} ("
                + ", ".join(f"{d['value']} {d['connections']}" for d in others[:3])
                + f"), server total {server_pct} %"
            )
        # ...but slots are shared: when other databases nearly exhaust them, new connections
        # to the target are refused too. Said, at most a warning (not the target's own load).
        server_status = by_threshold(server_pct, t["warning_pct"], t["critical_pct"])
        if server_status != CheckStatus.OK and status == CheckStatus.OK:
            status = CheckStatus.WARNING
            summary += "; server-wide slots nearly exhausted by other databases"
        outcome = CheckOutcome(
            status=status,
            summary=summary,
            findings=findings,
            metrics={
                "connections": own_total,
                "utilisation_pct": pct,
                "max_connections": max_conn,
                "connections_other_databases": other_total,
                "server_utilisation_pct": server_pct,
            },
        )
        if hidden and not session.can_read_all_stats:
            return with_coverage_gap(
                outcome, hidden=hidden, what="sessions' states are", fix=session.monitor_fix
            )
        return outcome


def split_by_database(found: list[dict], database: str) -> tuple[list[dict], list[dict]]:
    """(this database's rows, other databases' rows), each row tagged with its scope."""
    own, others = [], []
    for r in found:
        if r["database"] == database:
            r["scope"] = "target"
            own.append(r)
        else:
            r["scope"] = "other_database"
            others.append(r)
    return own, others


def others_note(others: list[dict], what: str) -> str:
    if not others:
        return ""
    names = sorted({str(r["database"]) for r in others})
    return (
        f"; {len(others)} {what} in other databases of the server ({', '.join(names[:3])}), "
        "reported apart, not graded"
    )


@register
class LongRunningQueriesCheck(Check):
    key = "long_running_queries"
    title = "Long-running queries"
    family = Family.ACTIVITY
    description = (
        "Active client queries running longer than the threshold (the playbook says 5 "
        "minutes; PgHero uses 60 s). Parallel workers are folded into their leader. The "
        "longest active queries of this database are listed even below the threshold, marked."
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
        ORDER BY a.datname IS NOT DISTINCT FROM current_database() DESC, a.query_start
        LIMIT %(limit)s
    """
    # limit: at most this many queries past the threshold; top: the longest listed whatever
    # their duration.
    default_thresholds = {"threshold_s": 300.0, "critical_s": 1800.0, "limit": 50, "top": 5}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        threshold = float(t["threshold_s"])
        top = max(0, int(t["top"]))
        active = rows(session.query(self.sql, {"limit": max(int(t["limit"]), top) * 2}))
        for r in active:
            r["over_threshold"] = (r["duration_s"] or 0) >= threshold
        own_active, other_active = split_by_database(active, session.current_database)
        found = [r for r in own_active if r["over_threshold"]][: int(t["limit"])]
        below = [r for r in own_active[:top] if not r["over_threshold"]]
        others = [r for r in other_active if r["over_threshold"]]
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
            summary + others_note(others, "long-running"),
            findings=found + below + others,
            metrics={
                "long_running": len(found),
                "longest_s": longest,
                "longest_active_s": own_active[0]["duration_s"] if own_active else 0.0,
                "long_running_other_databases": len(others),
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
        ORDER BY a.datname IS NOT DISTINCT FROM current_database() DESC, a.state_change
        LIMIT %(limit)s
    """
    count_sql = """
        SELECT count(*) FILTER (WHERE a.datname = current_database()) AS own,
               count(*) FILTER (WHERE a.datname IS DISTINCT FROM current_database()) AS others
        FROM pg_stat_activity a
        WHERE a.pid <> pg_backend_pid()
          AND a.state IN ('idle in transaction', 'idle in transaction (aborted)')
    """
    default_thresholds = {"threshold_s": 60.0, "critical_s": 600.0, "limit": 50}

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        found = rows(session.query(self.sql, {"limit": int(t["limit"])}))
        counts = session.one(self.count_sql) or {}
        count, other_count = int(counts.get("own") or 0), int(counts.get("others") or 0)
        threshold = float(t["threshold_s"])
        for r in found:
            r["over_threshold"] = (r["idle_s"] or 0) >= threshold
        own, others = split_by_database(found, session.current_database)
        flagged = [r for r in own if r["over_threshold"]]
        oldest = max((r["idle_s"] or 0 for r in own), default=0.0)
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
        if other_count:
            summary += (
                f"; {other_count} idle in transaction in other databases of the server "
                f"({', '.join(sorted({str(r['database']) for r in others})[:3])}), reported "
                "apart, not graded"
            )
        outcome = CheckOutcome(
            status,
            summary,
            findings=own + others,
            metrics={
                "idle_in_transaction": count,
                "oldest_idle_s": oldest,
                "idle_in_transaction_other_databases": other_count,
            },
        )
        return with_coverage_gap(
            outcome,
            hidden=hidden_sessions(session),
            what="sessions of other roles are",
            fix=session.monitor_fix,
        )


def _setting(role: str, database: str) -> str:
    """SQL for the idle_in_transaction_session_timeout ALTER ROLE/DATABASE ... SET gave."""
    return f"""(SELECT split_part(c, '=', 2) FROM pg_db_role_setting s, unnest(s.setconfig) c
               WHERE s.setrole = {role} AND s.setdatabase = {database}
                 AND c LIKE 'idle\\_in\\_transaction\\_session\\_timeout=%%' LIMIT 1)"""


@register
class IdleTransactionTimeoutsCheck(Check):
    key = "idle_transaction_timeouts"
    title = "Idle-in-transaction timeouts"
    family = Family.ACTIVITY
    description = (
        "Whether each application role (login, not superuser, may connect to this database) "
        "has an idle_in_transaction_session_timeout, set for the role, the database or the "
        "server: without one, a session left idle in transaction holds its locks until "
        "someone terminates it. A definition: one pass verifies a fix (ALTER ROLE ... SET)."
    )
    sql = f"""
        SELECT r.rolname AS role,
               {_setting("r.oid", "d.oid")} AS role_in_database,
               {_setting("r.oid", "0")} AS role_setting,
               {_setting("0", "d.oid")} AS database_setting
        FROM pg_roles r
        CROSS JOIN (SELECT oid FROM pg_database WHERE datname = current_database()) d
        WHERE r.rolcanlogin AND NOT r.rolsuper AND r.rolname NOT LIKE 'pg\\_%%'
          AND r.rolname <> current_user
          AND has_database_privilege(r.oid, d.oid, 'CONNECT')
        ORDER BY r.rolname
        LIMIT %(limit)s
    """
    # The server-wide value: what this session would reset to (its own SET LOCAL aside).
    server_sql = (
        "SELECT reset_val FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"
    )
    default_thresholds = {"recommended": "60s", "limit": 200}
    verifies_definition = True

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        server = str(session.scalar(self.server_sql) or "0")
        found = []
        for r in rows(session.query(self.sql, {"limit": int(t["limit"])})):
            # The most specific setting wins, as when the role's session starts.
            source, value = next(
                (where, value)
                for where, value in (
                    ("role in this database", r["role_in_database"]),
                    ("role", r["role_setting"]),
                    ("database", r["database_setting"]),
                    ("server", server),
                )
                if value is not None
            )
            off = _disabled(value)
            found.append(
                {
                    "role": r["role"],
                    "timeout": "off" if off else value,
                    "set_for": source,
                    "over_threshold": off,
                    "fix": (
                        f"ALTER ROLE {quote_ident(r['role'])} SET "
                        f"idle_in_transaction_session_timeout = '{t['recommended']}';"
                        if off
                        else ""
                    ),
                }
            )
        missing = [r for r in found if r["over_threshold"]]
        metrics = {"roles_without_idle_timeout": len(missing), "application_roles": len(found)}
        if not found:
            return CheckOutcome(
                CheckStatus.OK, "no application login role besides Quell's", metrics=metrics
            )
        if not missing:
            return CheckOutcome(
                CheckStatus.OK,
                f"every application role ({len(found)}) has an idle-in-transaction timeout",
                findings=found,
                metrics=metrics,
            )
        names = ", ".join(r["role"] for r in missing[:5]) + ("…" if len(missing) > 5 else "")
        return CheckOutcome(
            CheckStatus.WARNING,
            f"{len(missing)} application role{'s' if len(missing) != 1 else ''} without an "
            f"idle-in-transaction timeout ({names}): a session left idle in transaction keeps "
            "its locks until terminated",
            findings=missing + [r for r in found if not r["over_threshold"]],
            metrics=metrics,
        )


def _disabled(value: str) -> bool:
    """Whether a timeout setting is off ("0", "0ms", "0s", ...)."""
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return not digits.strip("0")


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
