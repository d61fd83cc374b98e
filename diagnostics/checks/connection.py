"""Connection and latency; server info and uptime."""

from __future__ import annotations

import statistics
import time

from .base import Check, CheckOutcome, CheckStatus, Family, register
from .util import by_threshold, escalate, human_seconds, jsonable


@register
class ConnectionCheck(Check):
    key = "connection"
    title = "Connection and latency"
    family = Family.CONNECTION
    description = (
        "Connects with connect_timeout and measures the connect time and the round trip of "
        "SELECT 1. An unreachable target, or one refusing connections (too many clients), "
        "is critical."
    )
    sql = "SELECT 1"
    default_thresholds = {
        "latency_warning_ms": 50.0,
        "latency_critical_ms": 500.0,
        "connect_warning_ms": 1000.0,
        "connect_critical_ms": 3000.0,
        "samples": 3,
    }

    def run(self, session) -> CheckOutcome:
        samples = []
        for _ in range(max(1, int(self.thresholds["samples"]))):
            started = time.monotonic()
            session.execute(self.sql)
            samples.append((time.monotonic() - started) * 1000)
        latency = statistics.median(samples)
        t = self.thresholds
        status = by_threshold(latency, t["latency_warning_ms"], t["latency_critical_ms"])
        connect_status = by_threshold(
            session.connect_ms, t["connect_warning_ms"], t["connect_critical_ms"]
        )
        status = escalate(status, connect_status)
        return CheckOutcome(
            status=status,
            summary=(
                f"reachable: connect {session.connect_ms:.1f} ms, "
                f"round trip {latency:.2f} ms (median of {len(samples)})"
            ),
            findings=[
                {
                    "connect_ms": round(session.connect_ms, 2),
                    "latency_ms": round(latency, 3),
                    "samples_ms": [round(s, 3) for s in samples],
                }
            ],
            metrics={"connect_ms": round(session.connect_ms, 2), "latency_ms": round(latency, 3)},
        )


@register
class ServerInfoCheck(Check):
    key = "server_info"
    title = "Server info and uptime"
    family = Family.CONNECTION
    description = (
        "Version, recovery (standby) state, managed platform, uptime and last configuration "
        "reload. A recent restart is flagged: during an incident it is a cause or an effect."
    )
    sql = """
        SELECT current_setting('server_version') AS server_version,
               current_setting('server_version_num')::int AS server_version_num,
               pg_is_in_recovery() AS in_recovery,
               pg_postmaster_start_time() AS started_at,
               EXTRACT(EPOCH FROM clock_timestamp() - pg_postmaster_start_time())::float
                   AS uptime_s,
               pg_conf_load_time() AS config_loaded_at,
               current_database() AS database,
               current_user AS connected_as,
               current_setting('max_connections')::int AS max_connections,
               current_setting('data_checksums', true) AS data_checksums,
               current_setting('block_size')::int AS block_size
    """
    default_thresholds = {"recent_restart_s": 600}

    def run(self, session) -> CheckOutcome:
        info = session.one(self.sql)
        info["platform"] = session.platform or "postgresql"
        info["superuser"] = session.is_superuser
        info["pg_monitor"] = bool(session.roles["pg_monitor"])
        uptime = info["uptime_s"]
        status = CheckStatus.OK
        role = "standby (in recovery)" if info["in_recovery"] else "primary"
        summary = (
            f"PostgreSQL {info['server_version']} ({info['platform']}, {role}), "
            f"up {human_seconds(uptime)}"
        )
        if uptime is not None and uptime < float(self.thresholds["recent_restart_s"]):
            status = CheckStatus.WARNING
            summary += " - restarted recently"
        return CheckOutcome(
            status=status,
            summary=summary,
            findings=[jsonable(info)],
            metrics={"uptime_s": round(uptime or 0, 1)},
        )
