"""Replication: lag of replicas (or of this standby) and inactive / WAL-retaining slots.

Aurora has no WAL functions (its replicas share storage), so these checks skip there, saying
why. On a standby pg_current_wal_lsn() is unavailable: the receive position is used instead.
"""

from __future__ import annotations

from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import by_threshold, escalate, human_bytes, human_seconds, rows, with_coverage_gap

AURORA_REASON = (
    "Aurora replicas share storage and Aurora has no WAL functions: see "
    "aurora_replica_status() or CloudWatch AuroraReplicaLag"
)


@register
class ReplicationLagCheck(Check):
    key = "replication_lag"
    title = "Replication lag"
    family = Family.REPLICATION
    description = (
        "On a primary: each connected replica's state and write/flush/replay lag (time and "
        "bytes). On a standby: how far replay is behind. PgHero warns at 5 s."
    )
    primary_sql = """
        SELECT r.pid, r.application_name, host(r.client_addr) AS client_addr, r.state,
               r.sync_state, EXTRACT(EPOCH FROM r.write_lag)::float AS write_lag_s,
               EXTRACT(EPOCH FROM r.flush_lag)::float AS flush_lag_s,
               EXTRACT(EPOCH FROM r.replay_lag)::float AS replay_lag_s,
               pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)::bigint AS replay_lag_bytes,
               r.usename AS user
        FROM pg_stat_replication r WHERE r.pid <> pg_backend_pid()
        ORDER BY r.application_name
    """
    standby_sql = """
        SELECT pg_last_wal_receive_lsn()::text AS receive_lsn,
               pg_last_wal_replay_lsn()::text AS replay_lsn,
               pg_last_xact_replay_timestamp() AS last_replayed_at,
               pg_is_wal_replay_paused() AS replay_paused,
               CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                    ELSE EXTRACT(EPOCH FROM clock_timestamp()
                                 - pg_last_xact_replay_timestamp())::float END AS lag_s,
               pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint
                   AS replay_lag_bytes,
               (SELECT status FROM pg_stat_wal_receiver LIMIT 1) AS receiver_status
    """
    sql = primary_sql  # on a standby run() sends standby_sql instead
    default_thresholds = {"lag_warning_s": 5.0, "lag_critical_s": 60.0}

    def run(self, session) -> CheckOutcome:
        if session.platform == "aurora":
            return CheckOutcome(CheckStatus.SKIPPED, AURORA_REASON)
        t = self.thresholds
        if session.in_recovery:
            r = rows([session.one(self.standby_sql)])[0]
            status = by_threshold(r["lag_s"], t["lag_warning_s"], t["lag_critical_s"])
            if r["receiver_status"] is None:
                status = escalate(status, CheckStatus.WARNING)
            summary = (
                f"standby: replay {human_seconds(r['lag_s'])} behind "
                f"({human_bytes(r['replay_lag_bytes'])} received, not replayed)"
                + ("; no WAL receiver running" if r["receiver_status"] is None else "")
                + ("; replay paused" if r["replay_paused"] else "")
            )
            return CheckOutcome(
                status,
                summary,
                findings=[{"role": "standby", **r}],
                metrics={"replay_lag_s": r["lag_s"] or 0.0},
            )
        replicas = rows(session.query(self.primary_sql))
        if not replicas:
            return CheckOutcome(
                CheckStatus.OK, "primary with no connected replica", metrics={"replicas": 0}
            )
        status = CheckStatus.OK
        worst = 0.0
        for r in replicas:
            lag = max((r[k] or 0.0) for k in ("write_lag_s", "flush_lag_s", "replay_lag_s"))
            worst = max(worst, lag)
            r["status"] = str(by_threshold(lag, t["lag_warning_s"], t["lag_critical_s"]))
            if r["state"] not in (None, "streaming"):
                r["status"] = str(escalate(CheckStatus(r["status"]), CheckStatus.WARNING))
            status = escalate(status, CheckStatus(r["status"]))
        summary = (
            f"{len(replicas)} replica{'s' if len(replicas) != 1 else ''}, worst lag "
            f"{human_seconds(worst)}"
        )
        outcome = CheckOutcome(
            status,
            summary,
            findings=replicas,
            metrics={"replicas": len(replicas), "max_lag_s": worst},
        )
        hidden = sum(1 for r in replicas if r["state"] is None)
        if not session.can_read_all_stats:
            outcome = with_coverage_gap(
                outcome, hidden=hidden, what="replicas' details are", fix=session.monitor_fix
            )
        return outcome


@register
class ReplicationSlotsCheck(Check):
    key = "replication_slots"
    title = "Replication slots"
    family = Family.REPLICATION
    description = (
        "Inactive slots and the WAL each slot holds back: an abandoned slot fills the disk. "
        "wal_status 'lost' means the slot's consumer can no longer catch up."
    )
    default_thresholds = {
        "retained_warning_bytes": 1024**3,
        "retained_critical_bytes": 10 * 1024**3,
        "inactive_is_warning": True,
    }

    @staticmethod
    def sql_for(version: int, in_recovery: bool) -> str:
        current = "pg_last_wal_receive_lsn()" if in_recovery else "pg_current_wal_lsn()"
        extra = ""
        if version >= 170000:
            extra += (
                ", s.inactive_since, s.invalidation_reason, s.conflicting"
                ", EXTRACT(EPOCH FROM clock_timestamp() - s.inactive_since)::float"
                " AS inactive_s"
            )
        return f"""
            SELECT s.slot_name, s.slot_type, s.plugin, s.database, s.active, s.active_pid,
                   s.temporary, s.wal_status, s.safe_wal_size,
                   pg_wal_lsn_diff({current}, s.restart_lsn)::bigint AS retained_bytes {extra}
            FROM pg_replication_slots s ORDER BY s.slot_name
        """

    sql = sql_for(170000, False)  # for display; run() builds it for the server

    def run(self, session) -> CheckOutcome:
        if session.platform == "aurora":
            return CheckOutcome(CheckStatus.SKIPPED, AURORA_REASON)
        t = self.thresholds
        slots = rows(session.query(self.sql_for(session.server_version_num, session.in_recovery)))
        if not slots:
            return CheckOutcome(CheckStatus.OK, "no replication slot", metrics={"slots": 0})
        status = CheckStatus.OK
        inactive = 0
        for s in slots:
            st = by_threshold(
                s["retained_bytes"], t["retained_warning_bytes"], t["retained_critical_bytes"]
            )
            if not s["active"]:
                inactive += 1
                if t["inactive_is_warning"]:
                    st = escalate(st, CheckStatus.WARNING)
            if s["wal_status"] == "lost":
                st = CheckStatus.CRITICAL
            s["status"] = str(st)
            status = escalate(status, st)
        retained = max((s["retained_bytes"] or 0) for s in slots)
        summary = (
            f"{len(slots)} slot{'s' if len(slots) != 1 else ''}, {inactive} inactive; "
            f"most WAL retained {human_bytes(retained)}"
        )
        lost = [s["slot_name"] for s in slots if s["wal_status"] == "lost"]
        if lost:
            summary += f"; lost: {', '.join(lost)}"
        return CheckOutcome(
            status,
            summary,
            findings=slots,
            metrics={
                "slots": len(slots),
                "inactive_slots": inactive,
                "max_retained_bytes": retained,
            },
        )
