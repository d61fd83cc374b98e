"""Replication lag and slots on a primary without replicas, and an abandoned slot."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import run_check

pytestmark = pytest.mark.slow


def test_primary_without_replicas_is_ok(target_spec):
    outcome = run_check(target_spec, "replication_lag").outcome
    assert outcome.status == CheckStatus.OK
    assert outcome.summary == "primary with no connected replica"


def test_inactive_slot_retaining_wal_is_flagged(pg_cluster, target_spec):
    pg_cluster.sql("SELECT pg_create_physical_replication_slot('quell_abandoned', true)")
    try:
        pg_cluster.sql(
            "CREATE TABLE IF NOT EXISTS wal_filler (x int); "
            "INSERT INTO wal_filler SELECT generate_series(1, 20000)"
        )
        outcome = run_check(target_spec, "replication_slots").outcome
        assert outcome.status == CheckStatus.WARNING
        [slot] = outcome.findings
        assert slot["slot_name"] == "quell_abandoned" and slot["active"] is False
        assert slot["retained_bytes"] > 0
        assert "1 inactive" in outcome.summary
        critical = run_check(target_spec, "replication_slots", retained_critical_bytes=1).outcome
        assert critical.status == CheckStatus.CRITICAL
    finally:
        pg_cluster.sql("SELECT pg_drop_replication_slot('quell_abandoned')")
        pg_cluster.sql("DROP TABLE IF EXISTS wal_filler")
    assert run_check(target_spec, "replication_slots").outcome.status == CheckStatus.OK


@pytest.fixture(scope="module")
def standby(pg15):
    """A streaming hot standby of the PostgreSQL 15 cluster (the checks are version-neutral)."""
    replica = pg15.start_standby("pg15-standby")
    try:
        pg15.wait_for(
            "SELECT count(*) > 0 FROM pg_stat_replication WHERE state = 'streaming'", timeout=30
        )
        yield replica
    finally:
        replica.stop()


def test_primary_reports_its_streaming_replica(pg15, standby):
    outcome = run_check(pg15.spec(), "replication_lag").outcome
    assert outcome.status == CheckStatus.OK
    [replica] = outcome.findings
    assert replica["state"] == "streaming" and replica["status"] == "ok"
    assert "replay_lag_bytes" in replica and "replay_lag_s" in replica
    assert outcome.summary.startswith("1 replica")
    assert outcome.metrics["replicas"] == 1


def test_standby_reports_its_replay_lag(pg15, standby):
    pg15.sql("CREATE TABLE IF NOT EXISTS replicated (x int); INSERT INTO replicated VALUES (1)")
    standby.wait_for("SELECT count(*) > 0 FROM pg_class WHERE relname = 'replicated'", timeout=30)
    outcome = run_check(standby.spec(), "replication_lag").outcome
    assert outcome.status in (CheckStatus.OK, CheckStatus.WARNING)
    [row] = outcome.findings
    assert row["role"] == "standby" and row["receiver_status"] == "streaming"
    assert outcome.summary.startswith("standby: replay")
    pg15.sql("DROP TABLE replicated")


def test_whole_suite_runs_read_only_on_a_hot_standby(standby):
    from diagnostics.checks import registry
    from diagnostics.runner import run_checks
    from diagnostics.target_probe import probe

    assert probe(standby.spec())["in_recovery"] is True
    builtin = [c for c in registry.all() if c.__module__.startswith("diagnostics.checks.")]
    results = {r.key: r.outcome for r in run_checks(standby.spec(), builtin)}
    errors = {k: o.error for k, o in results.items() if o.status == CheckStatus.ERROR}
    assert errors == {}
    assert "standby" in results["server_info"].summary
    assert results["replication_slots"].status == CheckStatus.OK
