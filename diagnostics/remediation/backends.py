"""Talking to a target for remediation: list backends, apply the guardrails, signal them.

No ORM here beyond asking diagnostics.own_sessions which sessions Quell opened: this module
connects to the target (diagnostics.target builds the connection: same connect timeout,
keepalives, credential scrubbing and watchdog) and returns plain dicts. It is
the only place in Quell that writes to a target, so every rule is applied here, on fresh data:

- only client backends of the target's own database; never Quell's own session nor any other
  session Quell opened (known by pid and backend_start, recorded at connect by
  diagnostics.own_sessions: an application_name proves nothing, anyone can set ``quell-x``);
  a parallel worker is refused with its leader named;
- superuser and replication roles only with ``force`` (the services allow force to admins);
- an idle-in-transaction session has no query to cancel: it needs terminate;
- right before signalling, the pid **and** its backend_start must still match what the
  responder confirmed (a pid reused by a new session is skipped), checked in the very
  statement that sends the signal;
- terminate is confirmed by ``pg_terminate_backend(pid, timeout)`` on PostgreSQL 14+, by
  re-reading pg_stat_activity before that; a cancel is confirmed by re-reading the backend.

The connection is not read-only, but still bounded: connect timeout, statement_timeout and
lock_timeout set per transaction (SET LOCAL), application_name ``quell-remediation``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import time
from collections.abc import Iterator
from typing import Any

import psycopg

from diagnostics.target import (
    ConnectionSpec,
    SessionBroken,
    TargetSession,
    TargetUnreachable,
    Timeouts,
    begin_statements,
    connect_target,
    connection_error_message,
)

from .. import own_sessions

APPLICATION_NAME = "quell-remediation"
SQL_MARKER = "/* quell-remediation */ "
QUERY_EXCERPT = 300

STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
CANCEL, TERMINATE, CANCEL_THEN_TERMINATE = "cancel", "terminate", "cancel_then_terminate"

# Outcomes per backend.
CANCELLED = "cancelled"  # the query ended (the session stays)
TERMINATED = "terminated"  # the session is gone
SIGNALLED = "signalled"  # signal sent, effect not seen within the confirmation window
SKIPPED = "skipped"  # not signalled: changed since the preview, or a guardrail refused it
FAILED = "failed"  # the server refused the signal (privileges) or an error occurred
OUTCOMES = (CANCELLED, TERMINATED, SIGNALLED, SKIPPED, FAILED)


class RemediationSession(TargetSession):
    """A read-write session on a target for signalling backends (statements bounded)."""

    sql_marker = SQL_MARKER

    def run(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """One statement in its own transaction, with statement and lock timeouts."""
        try:
            # Inside the try: a refused SET LOCAL leaves the transaction open, to roll back.
            self.execute(begin_statements(self.timeouts))
            rows = self.execute(sql, params)
        except BaseException:
            if not self.broken:
                with contextlib.suppress(Exception):
                    self.execute("ROLLBACK")
            raise
        self.execute("COMMIT")
        return rows


@contextlib.contextmanager
def open_remediation_session(
    spec: ConnectionSpec, timeouts: Timeouts | None = None
) -> Iterator[RemediationSession]:
    """A remediation session (autocommit, bounded statements); TargetUnreachable otherwise."""
    timeouts = timeouts or Timeouts()
    conn, connect_ms = connect_target(spec, timeouts, application_name=APPLICATION_NAME)
    session = RemediationSession(conn, spec, timeouts, connect_ms)
    try:
        yield session
    finally:
        session.close()


@dataclasses.dataclass(frozen=True)
class BackendFilter:
    """Which backends to hit: one pid, or every backend of the target's database matching all
    the given conditions."""

    pid: int | None = None
    states: tuple[str, ...] = ()
    min_duration_s: float | None = None
    user: str = ""
    application: str = ""
    query_contains: str = ""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.pid is not None:
            out["pid"] = self.pid
        if self.states:
            out["states"] = list(self.states)
        if self.min_duration_s is not None:
            out["min_duration_s"] = self.min_duration_s
        for name in ("user", "application", "query_contains"):
            if getattr(self, name):
                out[name] = getattr(self, name)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackendFilter:
        return cls(
            pid=data.get("pid"),
            states=tuple(data.get("states") or ()),
            min_duration_s=data.get("min_duration_s"),
            user=data.get("user") or "",
            application=data.get("application") or "",
            query_contains=data.get("query_contains") or "",
        )

    def matches(self, row: dict[str, Any]) -> str:
        """'' when the backend matches, else why it no longer does (re-checked at execution)."""
        if self.pid is not None and row["pid"] != self.pid:
            return "a different pid"
        if self.states and row["state"] not in self.states:
            return f"its state is now {row['state'] or 'unknown'}"
        if self.min_duration_s is not None and (row["duration_s"] or 0) < self.min_duration_s:
            return (
                f"it now runs for {row['duration_s'] or 0:.0f} s, under {self.min_duration_s:g} s"
            )
        if self.user and row["user"] != self.user:
            return f"its user is now {row['user']}"
        if self.application and row["application"] != self.application:
            return f"its application is now {row['application']}"
        if self.query_contains and self.query_contains.lower() not in (row["query"] or "").lower():
            return "its query changed"
        return ""


def _activity_sql(server_version_num: int) -> str:
    leader = "a.leader_pid" if server_version_num >= 130000 else "NULL::int"
    # Duration: of the running query when active; of the open transaction when idle in one;
    # of the idleness otherwise. The playbook's "longer than 5 minutes" reads the first.
    return f"""
        SELECT a.pid, a.backend_start, a.backend_type, a.datname AS database,
               a.usename AS "user", COALESCE(a.application_name, '') AS application,
               COALESCE(host(a.client_addr), CASE WHEN a.client_port = -1 THEN 'local socket'
                        END, '') AS client,
               a.client_port, a.state, a.query_start, a.xact_start, a.state_change,
               a.wait_event_type, a.wait_event, {leader} AS leader_pid,
               extract(epoch FROM now() - CASE
                   WHEN a.state IN ('active', 'fastpath function call') THEN a.query_start
                   WHEN a.state LIKE 'idle in transaction%%' THEN a.xact_start
                   WHEN a.state = 'idle' THEN a.state_change
                   ELSE a.backend_start END)::float8 AS duration_s,
               left(a.query, {QUERY_EXCERPT}) AS query,
               COALESCE(r.rolsuper, false) AS superuser,
               COALESCE(r.rolreplication, false) AS replication,
               a.pid = pg_backend_pid() AS own,
               a.datid IS NOT DISTINCT FROM
                   (SELECT oid FROM pg_database WHERE datname = current_database()) AS same_db
        FROM pg_stat_activity a
        LEFT JOIN pg_roles r ON r.oid = a.usesysid
    """


def _facts(session: RemediationSession) -> dict[str, Any]:
    return session.one(
        """
        SELECT current_database() AS database, current_user AS "user",
               r.rolsuper AS superuser,
               pg_has_role(current_user, 'pg_signal_backend', 'MEMBER') AS signal_backend
        FROM pg_roles r WHERE r.rolname = current_user
        """
    ) or {"database": "", "user": "", "superuser": False, "signal_backend": False}


def refusal(row: dict[str, Any], *, kind: str, force: bool, facts: dict[str, Any]) -> str:
    """Why a guardrail refuses this backend ('' when it may be signalled)."""
    if row["own"]:
        return "Quell's own remediation session"
    if row.get("quell_session"):
        return f"a session Quell opened ({row['application'] or 'no application_name'})"
    if row["backend_type"] is None or row["backend_start"] is None:
        # Without pg_read_all_stats another role's session shows almost nothing: no backend
        # type, no start time, no query. Nothing can be judged, so nothing is signalled.
        return (
            f"hidden from Quell's role {facts['user']} (another role's session): "
            f"GRANT pg_monitor TO {facts['user']}; to see and judge it"
        )
    if row["backend_type"] == "parallel worker":
        leader = row.get("leader_pid")
        return "a parallel worker: signal its leader" + (f" (pid {leader})" if leader else "")
    if row["backend_type"] != "client backend":
        return f"not a client backend ({row['backend_type'] or 'unknown'})"
    if not row["same_db"]:
        return f"in another database ({row['database'] or 'none'})"
    if row["superuser"] and not force:
        return "a superuser's session (an admin may force it)"
    if row["replication"] and not force:
        return "a replication role's session (an admin may force it)"
    if kind == CANCEL and row["state"] in IDLE_IN_TRANSACTION:
        return "idle in transaction: there is no query to cancel, terminate it instead"
    if not facts["superuser"]:
        if row["superuser"]:
            return (
                "only a superuser may signal a superuser's session "
                f"(Quell connects as {facts['user']})"
            )
        if not facts["signal_backend"] and row["user"] != facts["user"]:
            return (
                f"Quell's role {facts['user']} may not signal other roles' sessions: "
                f"GRANT pg_signal_backend TO {facts['user']};"
            )
    return ""


def _shape(row: dict[str, Any], reason: str) -> dict[str, Any]:
    """What the preview shows and stores (JSON-safe)."""
    duration = row["duration_s"]
    return {
        "pid": row["pid"],
        "backend_start": row["backend_start"].isoformat() if row["backend_start"] else None,
        "user": row["user"],
        "application": row["application"],
        "client": row["client"],
        "state": row["state"],
        "backend_type": row["backend_type"],
        "database": row["database"],
        "duration_s": round(duration, 1) if duration is not None else None,
        "query_start": row["query_start"].isoformat() if row["query_start"] else None,
        "wait_event": ":".join(x for x in (row["wait_event_type"], row["wait_event"]) if x),
        # Another database's query text is none of this target's business.
        "query": (row["query"] or "") if row["same_db"] else "",
        "superuser": bool(row["superuser"]),
        "replication": bool(row["replication"]),
        "eligible": not reason,
        "reason": reason,
    }


def _select(session: RemediationSession, flt: BackendFilter, pids=None) -> list[dict[str, Any]]:
    sql = _activity_sql(session.server_version_num)
    where, params = [], []
    if pids is not None:
        where.append("a.pid = ANY(%s)")
        params.append(list(pids))
    elif flt.pid is not None:
        # One pid: looked up server-wide so the preview can say why another database's is refused.
        where.append("a.pid = %s")
        params.append(flt.pid)
    else:
        where.append("a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())")
        if flt.states:
            where.append("a.state = ANY(%s)")
            params.append(list(flt.states))
        if flt.user:
            where.append("a.usename = %s")
            params.append(flt.user)
        if flt.application:
            where.append("a.application_name = %s")
            params.append(flt.application)
        if flt.query_contains:
            where.append("strpos(lower(a.query), lower(%s)) > 0")
            params.append(flt.query_contains)
    sql += " WHERE " + " AND ".join(where) + " ORDER BY a.backend_start, a.pid"
    rows = session.run(sql, params)
    if pids is None and flt.min_duration_s is not None:
        rows = [r for r in rows if (r["duration_s"] or 0) >= flt.min_duration_s]
    ours = own_sessions.known((r["pid"], r["backend_start"]) for r in rows)
    for row in rows:
        row["quell_session"] = (row["pid"], row["backend_start"]) in ours
    return rows


def preview(
    session: RemediationSession, flt: BackendFilter, *, kind: str, force: bool
) -> dict[str, Any]:
    """Every backend the filter finds, each marked eligible or refused (with the reason)."""
    facts = _facts(session)
    rows = _select(session, flt)
    backends = [_shape(r, refusal(r, kind=kind, force=force, facts=facts)) for r in rows]
    return {
        "server_version_num": session.server_version_num,
        "database": facts["database"],
        "connected_as": facts["user"],
        "backends": backends,
    }


def _parse_start(value: str | datetime.datetime) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value)


def _watch(session: RemediationSession, pid: int, start, timeout_s: float, settled) -> Any:
    """Re-read the session's pg_stat_activity row (fresh snapshot each time) every 50 ms until
    `settled(row or None)` answers something other than None, or the timeout passes (None)."""
    deadline = time.monotonic() + timeout_s
    while True:
        session.execute("SELECT pg_stat_clear_snapshot()")
        rows = session.run(
            "SELECT state, query_start FROM pg_stat_activity WHERE pid = %s AND backend_start = %s",
            (pid, start),
        )
        verdict = settled(rows[0] if rows else None)
        if verdict is not None:
            return verdict
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.05)


def _wait_gone(session: RemediationSession, pid: int, start, timeout_s: float) -> bool:
    """True once the backend is gone (PostgreSQL before 14 cannot wait for it server-side)."""
    return bool(_watch(session, pid, start, timeout_s, lambda row: True if row is None else None))


def _wait_cancelled(
    session: RemediationSession, pid: int, start, query_start, timeout_s: float
) -> str:
    """'' once the cancelled query is over (the session stays), else what is still seen."""

    def settled(row):
        if row is None:
            return "gone"
        if row["state"] != "active" or row["query_start"] != query_start:
            return ""
        return None

    verdict = _watch(session, pid, start, timeout_s, settled)
    return "still running" if verdict is None else verdict


def signal(
    session: RemediationSession,
    confirmed: list[dict[str, Any]],
    *,
    kind: str,
    flt: BackendFilter,
    force: bool,
    confirm_timeout_s: float = 5.0,
    legacy_confirm: bool = False,
) -> list[dict[str, Any]]:
    """Signal each confirmed (pid, backend_start) still matching; one result per pair.

    kind is cancel or terminate (cancel_then_terminate cancels here; idle-in-transaction
    sessions, which have no query to cancel, are terminated at once). `legacy_confirm` uses the
    pre-14 confirmation (re-reading pg_stat_activity) on any server.
    """
    facts = _facts(session)
    pairs = [(int(c["pid"]), _parse_start(c["backend_start"])) for c in confirmed]
    seen_query = {int(c["pid"]): c.get("query_start") for c in confirmed}
    current = {r["pid"]: r for r in _select(session, flt, pids=[p for p, _ in pairs])}
    use_timeout_arg = session.server_version_num >= 140000 and not legacy_confirm
    results = []
    for pid, start in pairs:
        result = {"pid": pid, "backend_start": start.isoformat(), "outcome": SKIPPED, "detail": ""}
        results.append(result)
        row = current.get(pid)
        if row is None:
            result["detail"] = "gone before it was signalled"
            continue
        if row["backend_start"] != start:
            result["detail"] = (
                "changed since the preview: the pid now belongs to a session started at "
                f"{row['backend_start'].isoformat()}"
            )
            continue
        result.update(
            user=row["user"],
            state=row["state"],
            query=row["query"] or "",
            query_start=row["query_start"].isoformat() if row["query_start"] else None,
        )
        this_kind = kind
        if kind == CANCEL_THEN_TERMINATE:
            this_kind = TERMINATE if row["state"] in IDLE_IN_TRANSACTION else CANCEL
        reason = refusal(row, kind=this_kind, force=force, facts=facts)
        if reason:
            result["detail"] = f"refused: {reason}"
            continue
        mismatch = flt.matches(row)
        if mismatch:
            result["detail"] = f"no longer matches the filter: {mismatch}"
            continue
        previewed = seen_query.get(pid)
        if this_kind == CANCEL and previewed and previewed != result["query_start"]:
            result["detail"] = "runs a different query than the one previewed: preview again"
            continue
        sent = _send(
            session,
            result,
            this_kind,
            pid,
            start,
            query_start=row["query_start"],
            timeout_s=confirm_timeout_s,
            use_timeout_arg=use_timeout_arg,
        )
        if not sent:
            break
    return results


def escalate(
    session: RemediationSession,
    cancelled: list[dict[str, Any]],
    *,
    force: bool,
    confirm_timeout_s: float = 5.0,
    legacy_confirm: bool = False,
) -> list[dict[str, Any]]:
    """After the grace period: terminate the cancelled backends that did not let go.

    A backend is terminated only when it is the same session (pid and backend_start), still
    runs the very query that was cancelled (same query_start) or sits idle in its transaction;
    a session that recovered and moved on is left alone.
    """
    facts = _facts(session)
    pairs = [(int(c["pid"]), _parse_start(c["backend_start"])) for c in cancelled]
    current = {r["pid"]: r for r in _select(session, BackendFilter(), pids=[p for p, _ in pairs])}
    use_timeout_arg = session.server_version_num >= 140000 and not legacy_confirm
    results = []
    for entry, (pid, start) in zip(cancelled, pairs, strict=True):
        result = {"pid": pid, "backend_start": start.isoformat(), "outcome": SKIPPED, "detail": ""}
        results.append(result)
        row = current.get(pid)
        if row is None or row["backend_start"] != start:
            result["detail"] = "gone: nothing left to terminate"
            continue
        query_start = row["query_start"].isoformat() if row["query_start"] else None
        still_running = row["state"] == "active" and query_start == entry.get("query_start")
        if not (still_running or row["state"] == "idle in transaction"):
            result["detail"] = f"let go after the cancel (now {row['state']}): left alone"
            continue
        reason = refusal(row, kind=TERMINATE, force=force, facts=facts)
        if reason:
            result["detail"] = f"refused: {reason}"
            continue
        sent = _send(
            session,
            result,
            TERMINATE,
            pid,
            start,
            query_start=None,
            timeout_s=confirm_timeout_s,
            use_timeout_arg=use_timeout_arg,
        )
        if not sent:
            break
    return results


def _send(session, result, action, pid, start, *, query_start, timeout_s, use_timeout_arg) -> bool:
    """Cancel or terminate one backend, its outcome written into `result`. False when the
    session to the server was lost: nothing more can be signalled in this batch."""
    result["action"] = action
    try:
        if action == TERMINATE:
            _terminate(session, result, pid, start, timeout_s, use_timeout_arg)
        else:
            _cancel(session, result, pid, start, query_start, timeout_s)
    except psycopg.Error as exc:
        result.update(outcome=FAILED, detail=connection_error_message(exc, session._spec))
    except SessionBroken as exc:
        result.update(outcome=FAILED, detail=str(exc))
        return False
    return True


def _signal(session, call: str, pid, start, *call_args) -> list:
    """Run `call` (a fixed pg_*_backend expression of this module) on the session only while it
    is the one that was previewed: the identity check and the signal in one statement, so a pid
    reused in between is left alone. No row: the session is gone."""
    return session.run(
        f"SELECT {call} AS ok FROM pg_stat_activity WHERE pid = %s AND backend_start = %s",
        (*call_args, pid, start),
    )


def _terminate(session, result, pid, start, timeout_s, use_timeout_arg) -> None:
    timeout_ms = max(1, int(timeout_s * 1000))
    if use_timeout_arg:
        # With a timeout, the function waits for the exit and says whether it happened.
        rows = _signal(session, "pg_terminate_backend(pid, %s)", pid, start, timeout_ms)
    else:
        rows = _signal(session, "pg_terminate_backend(pid)", pid, start)
    if not rows:
        result["detail"] = "gone before it was signalled"
        return
    if use_timeout_arg:
        gone = bool(rows[0]["ok"])
    else:
        gone = rows[0]["ok"] and _wait_gone(session, pid, start, timeout_s)
    if gone:
        result.update(outcome=TERMINATED, detail="the session ended")
    elif rows[0]["ok"] is False and not use_timeout_arg:
        result.update(outcome=FAILED, detail="the server did not signal it")
    else:
        result.update(outcome=SIGNALLED, detail=f"still present after {timeout_s:g} s")


def _cancel(session, result, pid, start, query_start, timeout_s) -> None:
    rows = _signal(session, "pg_cancel_backend(pid)", pid, start)
    if not rows:
        result["detail"] = "gone before it was signalled"
        return
    if not rows[0]["ok"]:
        result.update(outcome=FAILED, detail="the server did not signal it")
        return
    still = _wait_cancelled(session, pid, start, query_start, timeout_s)
    if not still:
        result.update(outcome=CANCELLED, detail="the query ended; the session stays")
    elif still == "gone":
        result.update(outcome=TERMINATED, detail="the session ended after the cancel")
    else:
        result.update(
            outcome=SIGNALLED, detail=f"the query was still running after {timeout_s:g} s"
        )


__all__ = [
    "APPLICATION_NAME",
    "CANCEL",
    "CANCEL_THEN_TERMINATE",
    "STATES",
    "TERMINATE",
    "BackendFilter",
    "RemediationSession",
    "TargetUnreachable",
    "escalate",
    "open_remediation_session",
    "preview",
    "refusal",
    "signal",
]
