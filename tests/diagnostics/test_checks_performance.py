"""Slow queries (pg_stat_statements in its three states) and the cache hit ratio."""

import pytest

from diagnostics.checks import CheckStatus
from diagnostics.checks.performance import statements_columns
from tests.diagnostics.clusters import LIMITED_ROLE, run_check

pytestmark = pytest.mark.slow


def test_statements_columns_follow_the_extension_version_not_the_server():
    assert statements_columns("1.7")["total"] == "total_time"
    assert statements_columns("1.7")["mean"] == "mean_time"
    assert statements_columns("1.8")["total"] == "total_exec_time"
    assert statements_columns("1.10")["mean"] == "mean_exec_time"  # 1.10 > 1.8 numerically
    assert statements_columns("1.10")["blk_read"] == "blk_read_time"
    assert statements_columns("1.11")["blk_read"] == "shared_blk_read_time"


def test_slow_queries_ranks_statements_by_mean_and_total_time(fresh_db):
    cluster, dbname, spec = fresh_db
    with cluster.connect(dbname) as conn:
        for _ in range(3):
            conn.execute("SELECT pg_sleep(0.03)")
        for _ in range(20):
            conn.execute("SELECT count(*) FROM generate_series(1, 1000)")

    outcome = run_check(spec, "slow_queries", slow_mean_ms=10, min_calls=2).outcome

    assert outcome.status == CheckStatus.WARNING
    by_mean = [f for f in outcome.findings if f["ranking"] == "mean"]
    by_total = [f for f in outcome.findings if f["ranking"] == "total"]
    # No call floor on the ranking: a one-off statement (the fresh database's CREATE EXTENSION)
    # may rank too, so the statements are found by their text.
    [sleep] = [f for f in by_mean if "pg_sleep" in f["query"]]
    assert sleep["calls"] == 3 and sleep["mean_ms"] >= 30 and sleep["slow"]
    assert by_mean.index(sleep) < min(
        (i for i, f in enumerate(by_mean) if "generate_series" in f["query"]), default=len(by_mean)
    )
    assert any("generate_series" in f["query"] and f["calls"] == 20 for f in by_total)
    assert all("rows" in f and "total_ms" in f for f in outcome.findings)
    # Quell's own statements are not findings.
    assert not any("quell-diagnostics" in f["query"] for f in outcome.findings)
    version = cluster.sql(
        "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'", dbname=dbname
    )[0][0]
    assert f"pg_stat_statements {version} in schema public" in outcome.summary
    assert outcome.metrics["calls"] >= 23

    relaxed = run_check(spec, "slow_queries", slow_mean_ms=10_000).outcome
    assert relaxed.status == CheckStatus.OK


def test_slow_queries_reads_the_extension_from_its_own_schema(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "DROP EXTENSION pg_stat_statements; CREATE SCHEMA monitoring; "
        "CREATE EXTENSION pg_stat_statements SCHEMA monitoring",
        dbname=dbname,
    )
    outcome = run_check(spec, "slow_queries").outcome
    assert outcome.status in (CheckStatus.OK, CheckStatus.WARNING)
    assert "in schema monitoring" in outcome.summary


def test_slow_queries_skipped_with_fix_when_extension_not_created(pg_nopreload):
    outcome = run_check(pg_nopreload.spec("quell_noext"), "slow_queries").outcome
    assert outcome.status == CheckStatus.SKIPPED
    assert "not created" in outcome.summary
    # Neither created nor preloaded on this server: both steps are in the fix.
    assert "shared_preload_libraries" in outcome.fix
    assert "CREATE EXTENSION pg_stat_statements" in outcome.fix
    assert outcome.findings[0]["available"] is True
    assert outcome.findings[0]["created"] is False


def test_slow_queries_skipped_with_fix_when_not_preloaded(pg_nopreload):
    # The extension exists in this database but the library is not loaded: SQLSTATE 55000.
    outcome = run_check(pg_nopreload.spec("quell_target"), "slow_queries").outcome
    assert outcome.status == CheckStatus.SKIPPED
    assert "shared_preload_libraries" in outcome.summary
    assert "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" in outcome.fix
    state = outcome.findings[0]
    assert state["created"] is True and state["readable"] is False


def test_slow_queries_without_pg_monitor_is_a_coverage_gap(pg_cluster, fresh_db):
    cluster, dbname, _ = fresh_db
    with cluster.connect(dbname) as conn:
        conn.execute("SELECT pg_sleep(0.01)")
    outcome = run_check(cluster.spec(dbname, user=LIMITED_ROLE), "slow_queries").outcome
    assert outcome.status == CheckStatus.WARNING
    assert "insufficient privilege" in outcome.summary
    assert outcome.fix == f"GRANT pg_monitor TO {LIMITED_ROLE};"


def test_cache_hit_ratio_judges_only_with_enough_reads(target_spec):
    few = run_check(target_spec, "cache_hit_ratio", min_blocks=10**12).outcome
    assert few.status == CheckStatus.OK
    assert "too few block reads" in few.summary
    judged = run_check(
        target_spec, "cache_hit_ratio", min_blocks=0, warning_pct=100.1, critical_pct=0
    ).outcome
    assert judged.status == CheckStatus.WARNING
    assert judged.metrics["blks_hit"] > 0
    assert "cache hit ratio" in judged.summary


def test_checkpoints_read_from_the_view_of_the_server_version(pg_cluster, target_spec):
    for _ in range(2):
        pg_cluster.sql("CHECKPOINT")
    outcome = run_check(
        target_spec, "checkpoints", min_checkpoints=1, requested_warning_pct=1
    ).outcome
    row = outcome.findings[0]
    # PostgreSQL 17 moved the counters to pg_stat_checkpointer.
    expected = "pg_stat_checkpointer" if pg_cluster.version_num >= 170000 else "pg_stat_bgwriter"
    assert row["source"] == expected
    assert outcome.metrics["num_requested"] >= 2
    assert outcome.status == CheckStatus.WARNING
    assert "forced by WAL volume" in outcome.summary


@pytest.mark.parametrize("extversion", ["1.7", "1.10"])
def test_slow_queries_read_older_extension_versions_by_their_column_names(fresh_db, extversion):
    # A server keeps an older pg_stat_statements until ALTER EXTENSION ... UPDATE: 1.7 still
    # has total_time/mean_time, 1.10 still has blk_read_time (renamed in 1.11).
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "DROP EXTENSION pg_stat_statements; "
        f"CREATE EXTENSION pg_stat_statements VERSION '{extversion}'",
        dbname=dbname,
    )
    with cluster.connect(dbname) as conn:
        for _ in range(3):
            conn.execute("SELECT pg_sleep(0.02)")
    outcome = run_check(spec, "slow_queries", slow_mean_ms=10, min_calls=2).outcome
    assert outcome.status == CheckStatus.WARNING, outcome.error
    assert f"pg_stat_statements {extversion} in schema public" in outcome.summary
    assert any("pg_sleep" in f["query"] and f["mean_ms"] >= 20 for f in outcome.findings)


def test_slow_queries_flags_a_slow_statement_whatever_its_calls_and_a_large_share(fresh_db):
    # The incident: an UPDATE averaging about a second over 3 calls stayed under PgHero's floor
    # (>= 100 calls), and a fast statement called often took most of the time. Scaled down:
    # critical mean 100 ms, share rule from 100 ms of total time.
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE accounts (id int PRIMARY KEY, v int); INSERT INTO accounts VALUES (1, 0)",
        dbname=dbname,
    )
    # This database's statistics start from the workload (CREATE EXTENSION can be slow too).
    cluster.sql(
        "SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database "
        "WHERE datname = current_database()), 0)",
        dbname=dbname,
    )
    with cluster.connect(dbname) as conn:
        for _ in range(3):
            conn.execute(
                "UPDATE accounts SET v = v + 1 FROM (SELECT pg_sleep(0.12)) AS slow WHERE id = 1"
            )
        for _ in range(300):
            conn.execute("SELECT pg_sleep(0.004)")

    pghero_only = run_check(
        spec, "slow_queries", critical_mean_ms=10_000, share_warning_pct=100, share_critical_pct=100
    ).outcome
    assert pghero_only.status == CheckStatus.OK  # neither has >= 100 calls at >= 20 ms

    outcome = run_check(
        spec,
        "slow_queries",
        critical_mean_ms=100,
        share_warning_pct=50,
        share_critical_pct=95,
        share_min_total_ms=100,
    ).outcome

    assert outcome.status == CheckStatus.CRITICAL
    by_mean = [f for f in outcome.findings if f["ranking"] == "mean"]
    by_total = [f for f in outcome.findings if f["ranking"] == "total"]
    [update] = [f for f in by_mean if f["query"].startswith("UPDATE accounts")]
    assert update["calls"] == 3 and update["mean_ms"] >= 100
    assert update["flags"] == ["critical_mean"] and update["slow"]
    frequent = by_total[0]
    assert "pg_sleep" in frequent["query"] and frequent["calls"] == 300
    assert frequent["share_pct"] >= 50
    assert frequent["flags"] == ["share_of_total"]
    # Both rankings carry the share, so they read side by side.
    assert all("share_pct" in f for f in by_mean + by_total)
    # Each share is rounded to 2 decimals: the sum may exceed 100 by half a hundredth each.
    assert sum(f["share_pct"] for f in by_total) <= 100 + 0.005 * len(by_total) + 1e-9
    assert "2 statements flagged" in outcome.summary
    assert "1 averaging >= 100 ms" in outcome.summary
    assert "1 taking >= 50 % of execution time" in outcome.summary
    assert "highest mean" in outcome.summary and "UPDATE accounts" in outcome.summary
    assert "largest share" in outcome.summary
