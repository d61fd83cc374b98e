"""The runner: one session for a whole suite, isolated checks, bounded faults, both versions."""

import json
import os
import signal
import time

import pytest

from diagnostics.checks import Check, CheckOutcome, CheckStatus, Family, registry
from diagnostics.runner import run_checks
from diagnostics.target import ConnectionSpec, Timeouts

pytestmark = pytest.mark.slow

FAST = Timeouts(connect_s=2, statement_ms=500, lock_ms=100)


# Test-only checks (not registered): each misbehaves in one way.
class FailingSQL(Check):
    key, title, family = "t_failing_sql", "fails", Family.CONNECTION

    def run(self, session):
        session.query("SELECT 1 / 0")


class TooSlow(Check):
    key, title, family = "t_too_slow", "sleeps", Family.CONNECTION

    def run(self, session):
        session.query("SELECT pg_sleep(30)")


class Buggy(Check):
    key, title, family = "t_buggy", "raises", Family.CONNECTION

    def run(self, session):
        raise KeyError("a bug in a check")


class FromTheFuture(Check):
    key, title, family = "t_future", "gated", Family.CONNECTION
    min_server_version = 990000

    def run(self, session):
        raise AssertionError("must not run")


class SizeOfLocked(Check):
    """Reads a relation size the naive way, straight into an exclusive lock."""

    key, title, family = "t_size_of_locked", "naive size", Family.STORAGE

    def run(self, session):
        size = session.scalar("SELECT pg_relation_size('held')")
        return CheckOutcome(CheckStatus.OK, f"{size} bytes")


def _by_key(results):
    return {r.key: r for r in results}


def builtin_checks():
    """Quell's own checks (other tests may register throwaway ones for a while)."""
    return [c for c in registry.all() if c.__module__.startswith("diagnostics.checks.")]


def test_full_suite_runs_clean_on_both_versions(pg_cluster, target_spec):
    started = time.monotonic()
    results = run_checks(target_spec, builtin_checks(), timeouts=FAST)
    elapsed = time.monotonic() - started

    assert [r.key for r in results] == [c.key for c in builtin_checks()]
    assert len(results) >= 19
    errors = {r.key: r.outcome.error for r in results if r.outcome.status == CheckStatus.ERROR}
    assert errors == {}
    by_key = _by_key(results)
    assert by_key["connection"].outcome.status == CheckStatus.OK
    assert by_key["slow_queries"].outcome.status in (CheckStatus.OK, CheckStatus.WARNING)
    assert all(r.duration_ms >= 0 for r in results)
    assert elapsed < 5
    # Findings and metrics are stored as JSON as they are.
    json.dumps([[r.outcome.findings, r.outcome.metrics] for r in results], allow_nan=False)
    # Quell's session is gone afterwards (a backend leaves pg_stat_activity a moment after its
    # client closes the connection).
    pg_cluster.wait_for(
        "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = 'quell-diagnostics'",
        timeout=5,
    )


def test_one_failing_check_does_not_spoil_the_others(target_spec):
    suite = [
        registry.get("connection"),
        FailingSQL,
        TooSlow,
        Buggy,
        FromTheFuture,
        registry.get("server_info"),
    ]
    started = time.monotonic()
    results = _by_key(run_checks(target_spec, suite, timeouts=FAST))
    elapsed = time.monotonic() - started

    assert results["t_failing_sql"].outcome.status == CheckStatus.ERROR
    assert "division by zero" in results["t_failing_sql"].outcome.error
    slow = results["t_too_slow"]
    assert slow.outcome.status == CheckStatus.ERROR
    assert "timed out after 500 ms" in slow.outcome.summary
    assert 400 <= slow.duration_ms < 2000
    assert results["t_buggy"].outcome.status == CheckStatus.ERROR
    assert "KeyError" in results["t_buggy"].outcome.summary
    assert results["t_future"].outcome.status == CheckStatus.SKIPPED
    assert "needs PostgreSQL 99" in results["t_future"].outcome.summary
    # Checks after the failures ran normally in the same session.
    assert results["server_info"].outcome.status in (CheckStatus.OK, CheckStatus.WARNING)
    assert results["connection"].outcome.status == CheckStatus.OK
    assert elapsed < 3


def test_thresholds_reach_their_checks(pg_cluster, target_spec, holders):
    sleeper = holders(pg_cluster).send("SELECT pg_sleep(60);")
    sleeper.wait_state("state = 'active' AND query_start < clock_timestamp() - interval '0.3 s'")
    suite = [registry.get("long_running_queries")]
    default = run_checks(target_spec, suite, timeouts=FAST)[0]
    tuned = run_checks(
        target_spec, suite, timeouts=FAST, thresholds={"long_running_queries": {"threshold_s": 0.2}}
    )[0]
    assert default.outcome.status == CheckStatus.OK
    assert tuned.outcome.status == CheckStatus.WARNING


def test_closed_port_gives_critical_connection_and_errors_at_once(closed_port):
    host, port = closed_port
    started = time.monotonic()
    results = run_checks(
        ConnectionSpec(host=host, port=port, dbname="x", user="u"), registry.all(), timeouts=FAST
    )
    assert time.monotonic() - started < 1.0
    by_key = _by_key(results)
    assert by_key["connection"].outcome.status == CheckStatus.CRITICAL
    assert by_key["connection"].outcome.summary == "target unreachable"
    others = [r for r in results if r.key != "connection"]
    assert others and all(r.outcome.status == CheckStatus.ERROR for r in others)
    assert all(r.outcome.summary == "not run: target unreachable" for r in others)


def test_silent_server_gives_errors_within_the_connect_timeout(silent_listener):
    host, port = silent_listener
    started = time.monotonic()
    results = run_checks(
        ConnectionSpec(host=host, port=port, dbname="x", user="u"), registry.all(), timeouts=FAST
    )
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4.0
    by_key = _by_key(results)
    assert by_key["connection"].outcome.status == CheckStatus.CRITICAL
    assert "timed out" in by_key["connection"].outcome.error
    assert all(r.outcome.status == CheckStatus.ERROR for r in results if r.key != "connection")


def test_naive_size_read_behind_access_exclusive_lock_errors_within_lock_timeout(fresh_db, holders):
    cluster, dbname, spec = fresh_db
    cluster.sql("CREATE TABLE held (x int)", dbname=dbname)
    locker = holders(cluster, dbname).send("BEGIN; LOCK TABLE held IN ACCESS EXCLUSIVE MODE;")
    locker.wait_state("state = 'idle in transaction'")

    started = time.monotonic()
    results = _by_key(
        run_checks(
            spec,
            [SizeOfLocked, registry.get("table_sizes"), registry.get("connection")],
            timeouts=FAST,
        )
    )
    elapsed = time.monotonic() - started

    naive = results["t_size_of_locked"]
    assert naive.outcome.status == CheckStatus.ERROR
    assert naive.outcome.summary.startswith("catalog locked")
    assert naive.duration_ms < 1000  # lock_timeout 100 ms, not the lock holder's pleasure
    assert results["table_sizes"].outcome.status == CheckStatus.OK
    assert "catalog locked" in results["table_sizes"].outcome.summary
    assert results["connection"].outcome.status == CheckStatus.OK
    assert elapsed < 2.0


def test_server_that_stops_answering_mid_run_is_cut_off_by_the_watchdog(pg15):
    # Client-side behaviour, the same for every server version: one cluster is enough.
    target_spec = pg15.spec("quell_target")
    stopped = []

    class FreezeServer(Check):
        key, title, family = "t_freeze", "freezes its backend", Family.CONNECTION

        def run(self, session):
            # SIGSTOP our own backend: it can no longer enforce statement_timeout.
            os.kill(session.backend_pid, signal.SIGSTOP)
            stopped.append(session.backend_pid)
            session.query("SELECT 1")

    timeouts = Timeouts(connect_s=2, statement_ms=300, lock_ms=100)
    started = time.monotonic()
    try:
        results = _by_key(
            run_checks(target_spec, [FreezeServer, registry.get("connection")], timeouts=timeouts)
        )
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)
    elapsed = time.monotonic() - started

    assert elapsed < timeouts.watchdog_s + 1.5
    assert results["t_freeze"].outcome.status == CheckStatus.ERROR
    assert "connection" in results["t_freeze"].outcome.summary
    assert results["connection"].outcome.status == CheckStatus.ERROR
    assert results["connection"].outcome.summary == "not run: connection to the target lost"


def test_statistics_snapshot_is_fresh_for_every_check(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE snap (x int) WITH (autovacuum_enabled = off);"
        "INSERT INTO snap SELECT generate_series(1, 100)",
        dbname=dbname,
    )
    seen = []
    dead = "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'snap'"

    class ReadThenChange(Check):
        key, title, family = "t_read_then_change", "reads, then changes", Family.MAINTENANCE

        def run(self, session):
            seen.append(session.scalar(dead))
            # Another session deletes rows; its statistics reach the server when it exits.
            cluster.sql("DELETE FROM snap", dbname=dbname)
            cluster.wait_for(f"SELECT ({dead}) = 100", dbname=dbname)
            seen.append(session.scalar(dead))  # same transaction, same check: cached
            return CheckOutcome(CheckStatus.OK, "read")

    class ReadAgain(Check):
        key, title, family = "t_read_again", "reads again", Family.MAINTENANCE

        def run(self, session):
            seen.append(session.scalar(dead))
            return CheckOutcome(CheckStatus.OK, "read")

    run_checks(spec, [ReadThenChange, ReadAgain], timeouts=Timeouts(statement_ms=15000))
    # Within a check the snapshot is stable; the next check sees the new statistics.
    assert seen == [0, 0, 100]


def test_both_versions_give_the_same_statuses_for_the_same_state(pg15, pg18):
    """Version differences (pg_stat_statements 1.10 vs 1.12, pg_locks.waitstart, session
    counters, slot columns) are handled: a fresh database reads the same on 15 and 18."""
    statuses = {}
    for cluster in (pg15, pg18):
        dbname = "quell_same_state"
        cluster.create_database(dbname)
        try:
            results = run_checks(cluster.spec(dbname), builtin_checks(), timeouts=FAST)
        finally:
            cluster.drop_database(dbname)
        statuses[cluster.name] = {r.key: str(r.outcome.status) for r in results}
    assert "error" not in statuses["pg15"].values()
    assert "error" not in statuses["pg18"].values()
    # Checkpoint counters are server-wide history (each CREATE DATABASE forces two), which
    # other tests drive differently on each cluster: compare everything else.
    for result in statuses.values():
        result.pop("checkpoints")
    assert statuses["pg15"] == statuses["pg18"]


def test_too_many_connections_on_connect_is_critical(pg_cluster):
    pg_cluster.sql(
        "DO $$ BEGIN CREATE ROLE quell_no_slots LOGIN CONNECTION LIMIT 0; "
        "EXCEPTION WHEN duplicate_object THEN NULL; END $$",
        dbname="postgres",
    )
    results = _by_key(
        run_checks(
            pg_cluster.spec("quell_target", user="quell_no_slots"), builtin_checks(), timeouts=FAST
        )
    )
    connection = results["connection"].outcome
    assert connection.status == CheckStatus.CRITICAL
    assert connection.summary.startswith("too many connections")
    assert connection.findings[0]["sqlstate"] == "53300"


def test_full_suite_during_a_migration_holding_access_exclusive_locks(fresh_db, holders):
    """A migration mid-flight: no check waits behind its locks, none fails because of them."""
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE django_migrations (id bigserial PRIMARY KEY, app varchar(255), "
        "name varchar(255), applied timestamptz);"
        "INSERT INTO django_migrations (app, name, applied) VALUES ('a', '0001', now());"
        "CREATE TABLE orders (id serial PRIMARY KEY, v int);"
        "INSERT INTO orders (v) VALUES (1), (1);"
        "ANALYZE",
        dbname=dbname,
    )
    with pytest.raises(Exception, match="could not create unique index"):
        cluster.sql("CREATE UNIQUE INDEX CONCURRENTLY orders_v_key ON orders (v)", dbname=dbname)
    locker = holders(cluster, dbname).send(
        "BEGIN; LOCK TABLE orders, django_migrations IN ACCESS EXCLUSIVE MODE; "
        "ALTER SEQUENCE orders_id_seq RENAME TO orders_id_seq_renamed;"
    )
    locker.wait_state("state = 'idle in transaction'")

    started = time.monotonic()
    results = _by_key(run_checks(spec, builtin_checks(), timeouts=FAST))
    elapsed = time.monotonic() - started

    assert elapsed < 3.0
    errors = {k: r.outcome.error for k, r in results.items() if r.outcome.status == "error"}
    assert errors == {}
    assert "catalog locked" in results["table_sizes"].outcome.summary
    assert "catalog locked" in results["recent_migrations"].outcome.summary
    assert "catalog locked" in results["sequence_exhaustion"].outcome.summary
    assert results["invalid_indexes"].outcome.status == CheckStatus.WARNING
    assert "catalog-locked" in results["invalid_indexes"].outcome.summary


def test_a_worker_time_limit_ends_the_run_instead_of_becoming_a_result(target_spec):
    class SoftTimeLimitExceeded(Exception):
        pass

    class HitByTimeLimit(Check):
        key, title, family = "t_time_limit", "time limit", Family.CONNECTION

        def run(self, session):
            raise SoftTimeLimitExceeded()

    with pytest.raises(SoftTimeLimitExceeded):
        run_checks(target_spec, [HitByTimeLimit, registry.get("connection")], timeouts=FAST)


def test_threshold_overrides_take_their_defaults_type():
    check_class = registry.get("long_running_queries")
    assert check_class({"threshold_s": "0.5"}).thresholds["threshold_s"] == 0.5
    assert check_class({"limit": "7"}).thresholds["limit"] == 7
    assert check_class({}).thresholds["threshold_s"] == 300.0
    with pytest.raises(ValueError, match=r"threshold 'threshold_s' must be like 300\.0"):
        check_class({"threshold_s": "five minutes"})


def test_a_bad_threshold_is_that_checks_error_only(target_spec):
    results = _by_key(
        run_checks(
            target_spec,
            [registry.get("long_running_queries"), registry.get("connection")],
            thresholds={"long_running_queries": {"threshold_s": "five minutes"}},
            timeouts=FAST,
        )
    )
    bad = results["long_running_queries"].outcome
    assert bad.status == CheckStatus.ERROR and "must be like" in bad.error
    assert results["connection"].outcome.status == CheckStatus.OK


def test_a_check_costs_one_bookkeeping_round_trip_and_a_failure_still_rolls_back(
    target_spec, monkeypatch
):
    from diagnostics import target as target_module

    sent = []
    original = target_module.TargetSession.execute

    def recording(self, sql, params=None, **options):
        sent.append(sql)
        return original(self, sql, params, **options)

    monkeypatch.setattr(target_module.TargetSession, "execute", recording)
    suite = [registry.get("server_info"), FailingSQL, registry.get("connection")]
    results = _by_key(run_checks(target_spec, suite, timeouts=FAST))

    assert results["t_failing_sql"].outcome.status == CheckStatus.ERROR
    assert results["connection"].outcome.status == CheckStatus.OK
    savepoints = [s for s in sent if "SAVEPOINT quell_check_" in s and "ROLLBACK" not in s]
    # One round trip per check opens its savepoint, releases the previous check's and takes a
    # fresh statistics snapshot; only the failure adds its rollback.
    assert savepoints[0] == "SAVEPOINT quell_check_1; SELECT pg_stat_clear_snapshot()"
    assert savepoints[1] == (
        "RELEASE SAVEPOINT quell_check_1; SAVEPOINT quell_check_2; SELECT pg_stat_clear_snapshot()"
    )
    assert "ROLLBACK TO SAVEPOINT quell_check_2" in sent
    # The failed check's savepoint was released after its rollback: the next one releases
    # nothing more.
    assert savepoints[-1] == "SAVEPOINT quell_check_3; SELECT pg_stat_clear_snapshot()"
