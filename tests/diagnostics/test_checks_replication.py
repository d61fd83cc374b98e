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
