"""Deadlocks, rollbacks and temp files from pg_stat_database, as counters between runs."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import run_check

pytestmark = pytest.mark.slow


def _plant_deadlock(cluster, dbname, holders):
    cluster.sql(
        "CREATE TABLE pair (id int PRIMARY KEY, v int); INSERT INTO pair VALUES (1, 0), (2, 0)",
        dbname=dbname,
    )
    a = holders(cluster, dbname).send(
        "SET deadlock_timeout = '50ms'; BEGIN; UPDATE pair SET v = 1 WHERE id = 1;"
    )
    b = holders(cluster, dbname).send(
        "SET deadlock_timeout = '50ms'; BEGIN; UPDATE pair SET v = 1 WHERE id = 2;"
    )
    a.wait_state("state = 'idle in transaction'")
    b.wait_state("state = 'idle in transaction'")
    a.send("UPDATE pair SET v = 2 WHERE id = 2;")
    a.wait_state("wait_event_type = 'Lock'")
    b.send("UPDATE pair SET v = 2 WHERE id = 1; ROLLBACK;")
    a.wait_state("wait_event_type IS DISTINCT FROM 'Lock'")  # the deadlock was broken
    # Backends flush their statistics at exit at the latest: end both sessions.
    a.kill()
    b.kill()
    cluster.wait_for(
        "SELECT deadlocks >= 1 FROM pg_stat_database WHERE datname = %s", (dbname,), dbname=dbname
    )


def test_counters_are_metrics_for_comparison_between_runs(fresh_db, holders):
    cluster, dbname, spec = fresh_db
    before = run_check(spec, "database_errors").outcome
    assert before.status == CheckStatus.OK
    assert before.metrics["deadlocks"] == 0
    for key in (
        "xact_commit",
        "xact_rollback",
        "temp_files",
        "temp_bytes",
        "conflicts",
        "checksum_failures",
    ):
        assert key in before.metrics
    assert "since statistics reset" in before.summary

    _plant_deadlock(cluster, dbname, holders)

    # Lifetime totals alone are informative, not an alarm.
    after = run_check(spec, "database_errors").outcome
    assert after.metrics["deadlocks"] >= 1
    assert after.status == CheckStatus.OK

    # Against the previous run's counters, new deadlocks are a warning.
    compared = run_check(
        spec, "database_errors", baseline=before.metrics, baseline_age_s=30
    ).outcome
    assert compared.status == CheckStatus.WARNING
    assert "new deadlocks" in compared.summary
    assert compared.findings[0]["change"]["deadlocks"] >= 1
    assert "since the previous run" in compared.summary


def test_rollback_share_and_temp_files_are_judged_over_the_window(fresh_db):
    cluster, dbname, spec = fresh_db
    with cluster.connect(dbname) as conn:
        conn.execute("SET work_mem = '64kB'")
        conn.execute(
            "SELECT count(*) FROM (SELECT g FROM generate_series(1, 200000) g ORDER BY g DESC) s"
        )
        for _ in range(5):
            conn.autocommit = False
            conn.execute("SELECT 1")
            conn.rollback()
    cluster.wait_for(
        "SELECT temp_files > 0 FROM pg_stat_database WHERE datname = %s", (dbname,), dbname=dbname
    )
    outcome = run_check(
        spec,
        "database_errors",
        min_transactions=1,
        rollback_warning_pct=1,
        temp_bytes_warning_per_s=1,
    ).outcome
    assert outcome.status == CheckStatus.WARNING
    assert "rolled back" in outcome.summary and "temp files" in outcome.summary
    assert outcome.metrics["temp_files"] >= 1 and outcome.metrics["xact_rollback"] >= 5
