"""Connection and server-info checks against real PostgreSQL 15 and 18 clusters."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import run_check

pytestmark = pytest.mark.slow


def test_connection_check_reports_connect_time_and_round_trip(target_spec):
    execution = run_check(target_spec, "connection")
    outcome = execution.outcome
    assert outcome.status == CheckStatus.OK
    assert outcome.summary.startswith("reachable")
    assert outcome.metrics["connect_ms"] > 0
    assert 0 < outcome.metrics["latency_ms"] < 50
    assert len(outcome.findings[0]["samples_ms"]) == 3


def test_connection_check_warns_when_latency_exceeds_threshold(target_spec):
    outcome = run_check(target_spec, "connection", latency_warning_ms=0.0).outcome
    assert outcome.status == CheckStatus.WARNING


def test_server_info_reports_version_recovery_and_recent_restart(pg_cluster, target_spec):
    outcome = run_check(target_spec, "server_info", recent_restart_s=3600).outcome
    info = outcome.findings[0]
    assert info["server_version_num"] == pg_cluster.version_num
    assert info["server_version_num"] // 10000 in (15, 18)
    assert info["in_recovery"] is False
    assert info["platform"] == "postgresql"
    # The cluster started seconds ago: a recent restart is worth a responder's attention.
    assert outcome.status == CheckStatus.WARNING
    assert "restarted recently" in outcome.summary
    assert outcome.metrics["uptime_s"] < 3600


def test_server_info_is_ok_once_uptime_passes_the_threshold(target_spec):
    outcome = run_check(target_spec, "server_info", recent_restart_s=0).outcome
    assert outcome.status == CheckStatus.OK
    assert "primary" in outcome.summary
