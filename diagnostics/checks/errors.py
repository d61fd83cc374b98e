"""Errors: deadlocks, rollbacks, temp files, conflicts, checksum failures (pg_stat_database).

The counters are cumulative since the statistics were last reset (or the server started); they
go into `outcome.metrics` so a later run can be compared with this one. The runner passes this
check's result in the target's previous run (monitor runs included) as `self.previous`: the
check then judges the change since that run, not the lifetime total. On a first run (or after a
statistics reset) deadlocks counted since the reset or server start are flagged when that was
recent (`recent_window_s`, 24 h by default).

Deadlocks leave their detail (the two statements, the processes, the relation) only in the
server log. With `read_server_log` on, and a role that may read server files (superuser or
pg_read_server_files), the check reads the tail of the current log file for them; otherwise it
says where the log is (log_directory / log_filename, when this role may read those settings).
"""

from __future__ import annotations

import psycopg

from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import escalate, human_bytes, human_seconds, jsonable

COUNTERS = [
    "xact_commit",
    "xact_rollback",
    "deadlocks",
    "temp_files",
    "temp_bytes",
    "conflicts",
    "checksum_failures",
]
SESSION_COUNTERS = ["sessions", "sessions_abandoned", "sessions_fatal", "sessions_killed"]  # 14+
# Lines of a log entry that belong to the deadlock report after its ERROR line.
DEADLOCK_DETAIL_MARKERS = ("DETAIL:", "HINT:", "CONTEXT:", "STATEMENT:", "Process ")
DEADLOCK_EVENT_LIMIT = 5
DEADLOCK_EVENT_CHARS = 2000


def deadlocks_in_log(text: str, limit: int = DEADLOCK_EVENT_LIMIT) -> list[str]:
    """The last `limit` "deadlock detected" entries of a server log, each with its detail lines."""
    events: list[list[str]] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if "deadlock detected" in line:
            current = [line]
            events.append(current)
        elif current is not None and (
            line[:1] in (" ", "\t") or any(m in line for m in DEADLOCK_DETAIL_MARKERS)
        ):
            if len(current) < 20:
                current.append(line)
        else:
            current = None
    return ["\n".join(e)[:DEADLOCK_EVENT_CHARS] for e in events[-limit:]]


@register
class DatabaseErrorsCheck(Check):
    key = "database_errors"
    title = "Deadlocks, rollbacks and temp files"
    family = Family.ERRORS
    description = (
        "Deadlocks, rolled-back transactions, temporary files (queries spilling to disk), "
        "recovery conflicts and checksum failures for this database. Judged against the "
        "target's previous run (monitor runs included); on a first run, deadlocks since a "
        "recent statistics reset or server start are flagged. The server log is read for the "
        "deadlocks' detail only when `read_server_log` is on and the role may read it."
    )
    default_thresholds = {
        "rollback_warning_pct": 10.0,  # of transactions since the previous run (or stats reset)
        "min_transactions": 1000,
        "temp_bytes_warning_per_s": 10 * 1024 * 1024,
        # First run, or statistics reset since the previous one: deadlocks counted over a
        # window shorter than this are flagged (older lifetime totals say nothing about now).
        "recent_window_s": 86400,
        "read_server_log": False,
        "log_tail_bytes": 1024 * 1024,
    }

    @staticmethod
    def sql_for(version: int) -> str:
        extra = SESSION_COUNTERS if version >= 140000 else []
        cols = ", ".join(f"COALESCE(d.{c}, 0)::bigint AS {c}" for c in COUNTERS + extra)
        return f"""
            SELECT d.datname AS database, {cols}, d.stats_reset,
                   d.checksum_last_failure, pg_postmaster_start_time() AS server_started,
                   EXTRACT(EPOCH FROM clock_timestamp()
                       - COALESCE(d.stats_reset, pg_postmaster_start_time()))::float AS window_s
            FROM pg_stat_database d WHERE d.datname = current_database()
        """

    sql = sql_for(170000)  # for display; run() builds it for the server version
    log_sql = """
        SELECT f.path, s.size, pg_read_file(f.path, GREATEST(s.size - %(tail)s, 0),
                                            LEAST(s.size, %(tail)s)) AS tail
        FROM (SELECT COALESCE(pg_current_logfile('stderr'), pg_current_logfile('csvlog'),
                              pg_current_logfile()) AS path) f
        CROSS JOIN LATERAL pg_stat_file(f.path) s
        WHERE f.path IS NOT NULL
    """

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        row = jsonable(session.one(self.sql_for(session.server_version_num)))
        counters = [c for c in COUNTERS + SESSION_COUNTERS if c in row]
        metrics = {c: float(row[c]) for c in counters}
        since = "since statistics reset" if row["stats_reset"] else "since the server started"
        previous = self.previous.metrics if self.previous else None
        compared = False
        if previous and "deadlocks" in previous:
            delta = {c: metrics[c] - float(previous.get(c, 0)) for c in counters}
            if any(v < 0 for v in delta.values()):  # statistics were reset in between
                delta, window = metrics, row["window_s"]
                scope = f"{since} ({human_seconds(window)} ago, after the previous run)"
            else:
                compared = True
                window = self.previous.age_s or None
                scope = (
                    f"since the previous run ({human_seconds(window)} ago)"
                    if window
                    else "since the previous run"
                )
        else:
            delta, window = metrics, row["window_s"]
            scope = f"{since} ({human_seconds(window)} ago)"
        recent_window = float(t["recent_window_s"])
        status = CheckStatus.OK
        problems = []
        if metrics["checksum_failures"] > 0:
            status = CheckStatus.CRITICAL
            problems.append(
                f"{metrics['checksum_failures']:.0f} checksum failures "
                f"(last {row['checksum_last_failure']}): data corruption"
            )
        deadlocks_flagged = delta["deadlocks"] > 0 and (
            compared or (window is not None and window < recent_window)
        )
        if deadlocks_flagged:
            status = escalate(status, CheckStatus.WARNING)
            problems.append(
                f"{delta['deadlocks']:.0f} new deadlock{'s' if delta['deadlocks'] != 1 else ''} "
                + scope
            )
        xacts = delta["xact_commit"] + delta["xact_rollback"]
        rollback_pct = round(100.0 * delta["xact_rollback"] / xacts, 2) if xacts else 0.0
        if xacts >= float(t["min_transactions"]) and rollback_pct >= float(
            t["rollback_warning_pct"]
        ):
            status = escalate(status, CheckStatus.WARNING)
            problems.append(f"{rollback_pct} % of transactions rolled back")
        if window and delta["temp_bytes"] / window >= float(t["temp_bytes_warning_per_s"]):
            status = escalate(status, CheckStatus.WARNING)
            problems.append(f"{human_bytes(delta['temp_bytes'] / window)}/s written to temp files")
        summary = (
            f"{delta['deadlocks']:.0f} deadlocks, {delta['xact_rollback']:.0f} rollbacks "
            f"({rollback_pct} %), {delta['temp_files']:.0f} temp files "
            f"({human_bytes(delta['temp_bytes'])}) {scope}"
        )
        if delta["deadlocks"] > 0 and not deadlocks_flagged:
            summary += (
                f" (deadlocks counted over more than {human_seconds(recent_window)}: "
                "not judged; the next run compares with this one)"
            )
        if problems:
            summary = "; ".join(problems) + " - " + summary
        finding = {
            **row,
            "scope": scope,
            "window_s": window,
            "rollback_pct": rollback_pct,
            "compared_with_run": self.previous.run_id if compared else None,
            "change": {c: delta[c] for c in counters} if compared else None,
            "deadlocks_flagged": deadlocks_flagged,
        }
        fix = ""
        if delta["deadlocks"] > 0:
            finding["server_log"], fix = self._server_log(session)
        return CheckOutcome(status, summary, findings=[finding], metrics=metrics, fix=fix)

    def _server_log(self, session) -> tuple[dict, str]:
        """The deadlocks' detail from the server log when allowed, else where to look."""
        t = self.thresholds
        may_read = session.is_superuser or bool(
            session.scalar("SELECT pg_has_role(current_user, 'pg_read_server_files', 'USAGE')")
        )
        where = {
            name: session.setting(name)
            for name in ("logging_collector", "log_destination", "log_directory", "log_filename")
        }
        if where["log_directory"] and where["log_filename"]:
            look = (
                f"the server log: {where['log_directory']}/{where['log_filename']} (relative "
                "to the data directory unless absolute), lines with 'deadlock detected'"
            )
        else:
            look = (
                "the server log (lines with 'deadlock detected'); this role may not read the "
                "log settings (GRANT pg_read_all_settings to see where it is)"
            )
        info: dict = {"settings": where, "where_to_look": look, "read": False}
        grant = f"GRANT pg_read_server_files TO {session.current_user};"
        if not t["read_server_log"]:
            info["note"] = "reading the server log is off (threshold read_server_log)"
            return info, f"Deadlock detail is in {look}."
        if not may_read:
            info["note"] = "this role may not read server files"
            return info, f"Deadlock detail is in {look}; to let Quell read it: {grant}"
        try:
            with session.savepoint():
                found = session.one(self.log_sql, {"tail": int(t["log_tail_bytes"])})
        except psycopg.Error as exc:
            info["note"] = f"server log not readable: {exc.diag.message_primary or exc}"
            return info, f"Deadlock detail is in {look}."
        if not found:
            info["note"] = "no current log file (logging_collector off: the log goes to stderr)"
            return info, f"Deadlock detail is in {look}."
        events = deadlocks_in_log(found["tail"] or "")
        info.update(
            read=True,
            file=found["path"],
            tail_bytes=min(int(found["size"]), int(t["log_tail_bytes"])),
            deadlocks=events,
        )
        if not events:
            info["note"] = "no 'deadlock detected' entry in the tail of the current log file"
        return info, ""
