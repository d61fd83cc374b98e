"""Locks: full blocking chains (who blocks whom, lock mode, relation, wait time, root blockers).

pg_blocking_pids() takes the lock manager's shared state, so it is called only for backends
actually waiting on a heavyweight lock: those with wait_event_type = 'Lock' in pg_stat_activity
or an ungranted row in pg_locks (pg_locks is visible to every role, so waiters are found even
without pg_read_all_stats; their query texts may then be hidden).
"""

from __future__ import annotations

from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import HIDDEN_QUERY, QUERY_TEXT_LIMIT, by_threshold, escalate, human_seconds, rows

EDGES_SQL = """
    WITH waiting AS MATERIALIZED (
        SELECT a.pid FROM pg_stat_activity a
        WHERE a.wait_event_type = 'Lock' AND a.pid <> pg_backend_pid()
        UNION
        SELECT l.pid FROM pg_locks l
        WHERE NOT l.granted AND l.pid IS NOT NULL AND l.pid <> pg_backend_pid()
    )
    SELECT w.pid, pg_blocking_pids(w.pid) AS blocked_by FROM waiting w
"""

SESSIONS_SQL = f"""
    SELECT a.pid, a.datname AS database, a.usename AS user, a.application_name,
           host(a.client_addr) AS client_addr, a.state, a.backend_type,
           a.wait_event_type, a.wait_event, left(a.query, {QUERY_TEXT_LIMIT}) AS query,
           a.backend_start, a.xact_start, a.query_start,
           EXTRACT(EPOCH FROM clock_timestamp() - a.xact_start)::float AS xact_age_s,
           EXTRACT(EPOCH FROM clock_timestamp() - a.state_change)::float AS state_age_s
    FROM pg_stat_activity a WHERE a.pid = ANY(%(pids)s)
"""


def _waiting_locks_sql(version: int) -> str:
    # pg_locks.waitstart exists from PostgreSQL 14; before, the state change is the best guess.
    wait = (
        "EXTRACT(EPOCH FROM clock_timestamp() - l.waitstart)::float"
        if version >= 140000
        else "NULL::float"
    )
    return f"""
        SELECT l.pid, l.locktype, l.mode,
               CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
               l.transactionid::text AS transactionid, l.virtualxid, l.page, l.tuple,
               {wait} AS wait_s
        FROM pg_locks l WHERE NOT l.granted AND l.pid = ANY(%(pids)s)
    """


HELD_SQL = """
    SELECT l.pid, l.mode, l.locktype,
           CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text END AS relation,
           l.relation::bigint AS relation_oid, c.relkind::text AS relkind
    FROM pg_locks l LEFT JOIN pg_class c ON c.oid = l.relation
    WHERE l.granted AND l.pid = ANY(%(pids)s) AND l.locktype IN ('relation', 'tuple')
      AND l.relation IS NOT NULL
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


def _roots_of(pid: int, edges: dict[int, list[int]]) -> tuple[list[int], int]:
    """Root blockers reachable from pid (following blocked_by) and the chain depth."""
    roots: list[int] = []
    depth = 0
    seen = {pid}
    frontier = [(b, 1) for b in edges.get(pid, [])]
    while frontier:
        current, d = frontier.pop()
        if current in seen:
            continue  # a cycle (deadlock about to be broken) or a shared blocker
        seen.add(current)
        depth = max(depth, d)
        nexts = edges.get(current, [])
        if not nexts:
            roots.append(current)
        frontier += [(n, d + 1) for n in nexts]
    if not roots and edges.get(pid):
        roots = sorted(seen - {pid})[:1]  # all in a cycle: name one member
    return sorted(set(roots)), depth


@register
class BlockingLocksCheck(Check):
    key = "blocking_locks"
    title = "Locks and blocking chains"
    family = Family.LOCKS
    description = (
        "Sessions waiting on locks, who blocks them (directly and at the root of the chain), "
        "the lock mode and relation waited for, and how long. Graded by impact as well as by "
        "wait: a chain is critical at once when it blocks writers (a waiting INSERT, UPDATE, "
        "DELETE, MERGE or ALTER, or a lock mode of RowExclusive or stronger), blocks many "
        "sessions, or is deeper than 2. The root blockers are the sessions to look at (often "
        "idle in transaction): the summary names the worst one's application, state and how "
        "long its transaction has been open."
    )
    sql = EDGES_SQL
    default_thresholds = {
        "wait_warning_s": 5.0,
        "wait_critical_s": 60.0,
        "blocked_critical_count": 10,  # critical when this many sessions are blocked
        "depth_critical": 2,  # critical when a chain is deeper than this
        "writers_critical": True,  # critical at once when a writer is blocked
    }

    def run(self, session) -> CheckOutcome:
        own = session.backend_pid
        edge_rows = session.query(EDGES_SQL)
        edges = {r["pid"]: [p for p in (r["blocked_by"] or []) if p != own] for r in edge_rows}
        edges = {pid: blockers for pid, blockers in edges.items() if blockers}
        if not edges:
            return CheckOutcome(
                CheckStatus.OK, "no session is blocked by another", metrics={"blocked": 0}
            )
        involved = sorted(set(edges) | {b for bs in edges.values() for b in bs})
        params = {"pids": involved}
        sessions = {r["pid"]: r for r in rows(session.query(SESSIONS_SQL, params))}
        waiting = {}
        for r in rows(
            session.query(_waiting_locks_sql(session.server_version_num), {"pids": list(edges)})
        ):
            waiting.setdefault(r["pid"], r)
        held: dict[int, list[dict]] = {}
        for r in rows(session.query(HELD_SQL, params)):
            held.setdefault(r["pid"], []).append(r)

        findings = []
        blocked_under: dict[int, set[int]] = {}
        max_wait = 0.0
        max_depth = 0
        for pid in sorted(edges):
            roots, depth = _roots_of(pid, edges)
            for root in roots:
                blocked_under.setdefault(root, set()).add(pid)
            info = sessions.get(pid, {})
            lock = waiting.get(pid, {})
            wait_s = lock.get("wait_s")
            if wait_s is None:  # before 14, or not found: time since the state changed
                wait_s = info.get("state_age_s")
            max_wait = max(max_wait, wait_s or 0.0)
            max_depth = max(max_depth, depth)
            relation = lock.get("relation") or next(
                (
                    h["relation"]
                    for h in held.get(pid, [])
                    if h["locktype"] == "relation"
                    and h["relkind"] in ("r", "p")
                    and h["mode"] in ("RowExclusiveLock", "RowShareLock")
                ),
                None,
            )
            writer = _is_writer(lock.get("mode"), info.get("query"))
            findings.append(
                {
                    "role": "blocked",
                    "pid": pid,
                    "writer": writer,
                    "blocked_by": edges[pid],
                    "root_blockers": roots,
                    "depth": depth,
                    "wait_s": wait_s,
                    "lock_type": lock.get("locktype"),
                    "mode": lock.get("mode"),
                    "relation": relation,
                    "transactionid": lock.get("transactionid"),
                    **_session_fields(info),
                }
            )
        for root, blocked in sorted(blocked_under.items()):
            info = sessions.get(root, {})
            findings.append(
                {
                    "role": "root_blocker",
                    "pid": root,
                    "blocking": sorted(blocked),
                    "blocking_count": len(blocked),
                    "holds": [
                        {"mode": h["mode"], "relation": h["relation"]} for h in held.get(root, [])
                    ][:20],
                    **_session_fields(info),
                }
            )
        t = self.thresholds
        status = by_threshold(max_wait, float(t["wait_warning_s"]), float(t["wait_critical_s"]))
        writers = [f for f in findings if f.get("writer")]
        # Impact, not only wait time: each reason makes the chain critical at once.
        impact = []
        if writers and t["writers_critical"]:
            impact.append(f"blocks {len(writers)} writer{'s' if len(writers) != 1 else ''}")
        if len(edges) >= int(t["blocked_critical_count"]):
            impact.append(f"blocks {len(edges)} sessions (limit {t['blocked_critical_count']})")
        if max_depth > int(t["depth_critical"]):
            impact.append(f"chain depth {max_depth} > {t['depth_critical']}")
        if impact:
            status = escalate(status, CheckStatus.CRITICAL)
        worst_root = max(blocked_under.items(), key=lambda kv: (len(kv[1]), -kv[0]))
        root_info = sessions.get(worst_root[0], {})
        for f in findings:
            if f["role"] == "root_blocker":
                f["worst"] = f["pid"] == worst_root[0]
        summary = (
            f"{len(edges)} session{'s' if len(edges) != 1 else ''} blocked"
            f"{' (' + ', '.join(impact) + ')' if impact else ''}, longest wait "
            f"{human_seconds(max_wait)}, chain depth {max_depth}; root blocker "
            f"{_describe_root(worst_root[0], root_info)} blocks {len(worst_root[1])}"
        )
        hidden = sum(1 for f in findings if f.get("query") == HIDDEN_QUERY)
        outcome = CheckOutcome(
            status,
            summary,
            findings=findings,
            metrics={
                "blocked": len(edges),
                "blocked_writers": len(writers),
                "longest_wait_s": max_wait,
                "chain_depth": max_depth,
            },
        )
        if hidden and not session.can_read_all_stats:
            outcome.summary += f"; {hidden} sessions' queries hidden (GRANT pg_monitor)"
            outcome.fix = session.monitor_fix
        return outcome


# Lock modes from RowExclusiveLock up are taken by writes (INSERT/UPDATE/DELETE and up to DDL);
# a row-lock wait on another transaction (ShareLock on its transactionid) is one of them too.
WRITER_MODES = frozenset(
    {
        "RowExclusiveLock",
        "ShareUpdateExclusiveLock",
        "ShareLock",
        "ShareRowExclusiveLock",
        "ExclusiveLock",
        "AccessExclusiveLock",
    }
)
WRITER_VERBS = ("insert", "update", "delete", "merge", "alter", "truncate", "copy")


def _is_writer(mode: str | None, query: str | None) -> bool:
    """Whether a waiting session is a write: by the lock mode it waits for, else its verb."""
    if mode in WRITER_MODES:
        return True
    words = (query or "").lstrip("( \n\t").split(None, 1)
    return bool(words) and words[0].lower() in WRITER_VERBS


def _describe_root(pid: int, info: dict) -> str:
    """pid 123 (application 'billing', user app, idle in transaction, transaction open 4 min)."""
    app = info.get("application_name")
    parts = [f"application {app!r}" if app else "no application name"]
    parts.append(f"user {info.get('user') or '?'}")
    parts.append(info.get("state") or "state hidden")
    xact_age = info.get("xact_age_s")
    parts.append(
        f"transaction open {human_seconds(xact_age)}" if xact_age is not None else "no transaction"
    )
    return f"pid {pid} ({', '.join(parts)})"


def _session_fields(info: dict) -> dict:
    return {
        k: info.get(k)
        for k in (
            "user",
            "database",
            "application_name",
            "client_addr",
            "state",
            "wait_event_type",
            "wait_event",
            "query",
            "xact_age_s",
            "state_age_s",
            # With the pid, what remediation needs to be sure it signals this very session.
            "backend_start",
        )
    }
