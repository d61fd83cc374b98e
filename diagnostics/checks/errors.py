"""Errors: deadlocks, rollbacks, temp files, conflicts, checksum failures (pg_stat_database).

The counters are cumulative since the statistics were last reset; they go into
`outcome.metrics` so a later run can be compared with this one (the services compute the change
per second). A run may pass the previous run's metrics as the threshold ``baseline`` (and its
age in seconds as ``baseline_age_s``): the check then judges the change, not the lifetime total.
"""

from __future__ import annotations

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


@register
class DatabaseErrorsCheck(Check):
    key = "database_errors"
    title = "Deadlocks, rollbacks and temp files"
    family = Family.ERRORS
    description = (
        "Deadlocks, rolled-back transactions, temporary files (queries spilling to disk), "
        "recovery conflicts and checksum failures for this database, as counters to compare "
        "between runs."
    )
    default_thresholds = {
        "rollback_warning_pct": 10.0,  # of transactions since the baseline (or stats reset)
        "min_transactions": 1000,
        "temp_bytes_warning_per_s": 10 * 1024 * 1024,
        "baseline": None,
        "baseline_age_s": None,
    }

    @staticmethod
    def sql_for(version: int) -> str:
        extra = SESSION_COUNTERS if version >= 140000 else []
        cols = ", ".join(f"COALESCE(d.{c}, 0)::bigint AS {c}" for c in COUNTERS + extra)
        return f"""
            SELECT d.datname AS database, {cols}, d.stats_reset,
                   d.checksum_last_failure,
                   EXTRACT(EPOCH FROM clock_timestamp()
                       - COALESCE(d.stats_reset, pg_postmaster_start_time()))::float AS window_s
            FROM pg_stat_database d WHERE d.datname = current_database()
        """

    sql = sql_for(170000)  # for display; run() builds it for the server version

    def run(self, session) -> CheckOutcome:
        t = self.thresholds
        row = jsonable(session.one(self.sql_for(session.server_version_num)))
        counters = [c for c in COUNTERS + SESSION_COUNTERS if c in row]
        metrics = {c: float(row[c]) for c in counters}
        baseline = t.get("baseline") or None
        if baseline:
            window = float(t.get("baseline_age_s") or 0) or None
            delta = {c: metrics[c] - float(baseline.get(c, 0)) for c in counters}
            if any(v < 0 for v in delta.values()):  # statistics were reset in between
                delta, window, scope = metrics, row["window_s"], "since statistics reset"
            else:
                scope = (
                    f"since the previous run ({human_seconds(window)} ago)"
                    if window
                    else "since the previous run"
                )
        else:
            delta, window, scope = metrics, row["window_s"], "since statistics reset"
        status = CheckStatus.OK
        problems = []
        if metrics["checksum_failures"] > 0:
            status = CheckStatus.CRITICAL
            problems.append(
                f"{metrics['checksum_failures']:.0f} checksum failures "
                f"(last {row['checksum_last_failure']}): data corruption"
            )
        if baseline and delta["deadlocks"] > 0:
            status = escalate(status, CheckStatus.WARNING)
            problems.append(f"{delta['deadlocks']:.0f} new deadlocks")
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
        if problems:
            summary = "; ".join(problems) + " - " + summary
        finding = {
            **row,
            "scope": scope,
            "window_s": window,
            "rollback_pct": rollback_pct,
            "change": {c: delta[c] for c in counters} if baseline else None,
        }
        return CheckOutcome(status, summary, findings=[finding], metrics=metrics)
