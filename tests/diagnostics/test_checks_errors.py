"""Deadlocks, rollbacks and temp files from pg_stat_database, as counters between runs."""

import pytest

from diagnostics.checks import CheckStatus, PreviousResult, registry
from diagnostics.checks.errors import deadlocks_in_log
from diagnostics.runner import run_checks
from tests.diagnostics.clusters import LIMITED_ROLE, PG15_BIN, Cluster, run_check

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


def _errors(spec, previous=None, **thresholds):
    [execution] = run_checks(
        spec,
        [registry.get("database_errors")],
        thresholds={"database_errors": thresholds},
        previous={"database_errors": previous} if previous else None,
    )
    return execution.outcome


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
    assert "since the server started" in before.summary  # never reset on this cluster

    _plant_deadlock(cluster, dbname, holders)

    # Against the previous run's counters, new deadlocks are a warning.
    compared = _errors(spec, PreviousResult("ok", before.metrics, age_s=30, run_id=7))
    assert compared.status == CheckStatus.WARNING
    assert "1 new deadlock since the previous run (30.0 s ago)" in compared.summary
    finding = compared.findings[0]
    assert finding["change"]["deadlocks"] >= 1 and finding["compared_with_run"] == 7

    # Nothing new since a previous run that already counted them: healthy again.
    again = _errors(spec, PreviousResult("warning", compared.metrics, age_s=60))
    assert again.status == CheckStatus.OK
    assert "0 deadlocks" in again.summary and "since the previous run" in again.summary


def test_first_run_flags_deadlocks_since_a_recent_server_start(fresh_db, holders):
    cluster, dbname, spec = fresh_db
    _plant_deadlock(cluster, dbname, holders)

    # No previous run: the cluster started seconds ago, so its deadlocks are news.
    first = _errors(spec)
    assert first.status == CheckStatus.WARNING
    assert "new deadlock" in first.summary and "since the server started" in first.summary
    # The detail is only in the server log: reading it is off by default, so say where.
    log = first.findings[0]["server_log"]
    assert log["read"] is False and "read_server_log" in log["note"]
    assert "log" in log["settings"]["log_directory"]
    assert "deadlock detected" in first.fix and "log" in first.fix

    # Counted over a longer window than the threshold: informative, not an alarm.
    old = _errors(spec, recent_window_s=1)
    assert old.status == CheckStatus.OK
    assert "not judged" in old.summary


def test_a_role_that_may_not_read_server_files_is_told_the_grant(fresh_db, holders):
    cluster, dbname, _ = fresh_db
    _plant_deadlock(cluster, dbname, holders)
    limited = cluster.spec(dbname, user=LIMITED_ROLE)
    outcome = _errors(limited, read_server_log=True)
    assert outcome.status == CheckStatus.WARNING
    log = outcome.findings[0]["server_log"]
    assert log["read"] is False and "may not read server files" in log["note"]
    assert f"GRANT pg_read_server_files TO {LIMITED_ROLE};" in outcome.fix


@pytest.fixture(scope="module")
def logging_cluster():
    """PostgreSQL 15 with the logging collector on (the server log is a file it can read)."""
    cluster = Cluster(
        "pg15-logging",
        PG15_BIN,
        settings={"logging_collector": "on", "log_directory": "log", "deadlock_timeout": "50ms"},
    ).start()
    try:
        cluster.create_database("quell_target", pg_stat_statements=False)
        yield cluster
    finally:
        cluster.stop()


def test_deadlock_detail_is_read_from_the_server_log_when_allowed(logging_cluster, holders):
    _plant_deadlock(logging_cluster, "quell_target", holders)
    spec = logging_cluster.spec("quell_target")
    outcome = _errors(spec, read_server_log=True)
    assert outcome.status == CheckStatus.WARNING
    log = outcome.findings[0]["server_log"]
    assert log["read"] is True and log["file"].startswith("log/")
    [event] = log["deadlocks"]
    assert "deadlock detected" in event
    assert "Process" in event and "UPDATE pair SET v = 2" in event  # who and what
    assert outcome.fix == ""


def test_log_parser_keeps_each_deadlock_with_its_detail_lines():
    log = (
        "2025-01-01 10:00:00 UTC [1] LOG:  checkpoint starting\n"
        "2025-01-01 10:00:01 UTC [7] ERROR:  deadlock detected\n"
        "2025-01-01 10:00:01 UTC [7] DETAIL:  Process 7 waits for ShareLock on transaction 9\n"
        "\tProcess 8 waits for ShareLock on transaction 10\n"
        "2025-01-01 10:00:01 UTC [7] STATEMENT:  UPDATE a SET v = 1\n"
        "2025-01-01 10:00:02 UTC [1] LOG:  checkpoint complete\n"
    )
    [event] = deadlocks_in_log(log)
    assert event.count("\n") == 3 and "Process 8" in event and "checkpoint" not in event


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


@pytest.mark.django_db
def test_runs_judge_deadlocks_against_the_target_s_previous_run_monitor_runs_included(
    fresh_db,
    holders,
    sent_runs,
):
    from diagnostics import services
    from diagnostics.models import Trigger
    from tests.diagnostics.records import make_target

    cluster, dbname, _ = fresh_db
    target = make_target(host=cluster.host, port=cluster.port, database=dbname)
    suite = {"keys": ["database_errors"]}

    def run(trigger):
        started = services.diagnostic_run_start(target_id=target.pk, suite=suite, trigger=trigger)
        services.diagnostic_run_execute(run_id=started.pk)
        return started, started.results.get(key="database_errors")

    monitor_run, quiet = run(Trigger.MONITOR)
    assert quiet.status == "ok" and quiet.metrics["deadlocks"] == 0

    _plant_deadlock(cluster, dbname, holders)

    _, flagged = run(Trigger.MANUAL)
    assert flagged.status == "warning"
    assert "1 new deadlock since the previous run" in flagged.summary
    assert flagged.findings[0]["compared_with_run"] == monitor_run.pk

    # The next run compares with that one: nothing new, healthy again.
    _, calm = run(Trigger.MONITOR)
    assert calm.status == "ok" and "0 deadlocks" in calm.summary
