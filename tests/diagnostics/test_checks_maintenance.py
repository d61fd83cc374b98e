"""Dead tuples, wraparound, invalid indexes and sequences, with planted problems."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import LIMITED_ROLE, run_check

pytestmark = pytest.mark.slow


def test_table_with_most_tuples_dead_is_critical(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE churn (id int, pad text) WITH (autovacuum_enabled = off);"
        "INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g;"
        "ANALYZE churn; DELETE FROM churn WHERE id > 500;",
        dbname=dbname,
    )
    cluster.wait_for(
        "SELECT n_dead_tup >= 4500 FROM pg_stat_user_tables WHERE relname = 'churn'", dbname=dbname
    )

    outcome = run_check(spec, "dead_tuples").outcome

    assert outcome.status == CheckStatus.CRITICAL
    [row] = [f for f in outcome.findings if f["table"] == "churn"]
    assert row["dead_pct"] >= 89
    assert row["autovacuum_disabled"] is True
    assert row["last_autovacuum"] is None and row["vacuum_overdue"] is True
    assert row["approx_dead_bytes"] > 0
    assert "churn" in outcome.summary and "autovacuum disabled" in outcome.summary


@pytest.fixture
def never_vacuumed(fresh_db):
    """300,000 rows inserted then deleted, never vacuumed or analyzed: relpages is still 0."""
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE purged (id int, pad text) WITH (autovacuum_enabled = off);"
        "INSERT INTO purged SELECT g, 'row ' || g FROM generate_series(1, 300000) g;"
        "DELETE FROM purged;",
        dbname=dbname,
    )
    cluster.wait_for(
        "SELECT n_dead_tup >= 300000 FROM pg_stat_user_tables WHERE relname = 'purged'",
        dbname=dbname,
    )
    assert (
        cluster.sql("SELECT relpages FROM pg_class WHERE relname = 'purged'", dbname=dbname)[0][0]
        == 0
    )  # what the catalog alone would multiply: "~0 B"
    return cluster, dbname, spec


def test_dead_bytes_of_a_never_vacuumed_table_come_from_its_size(never_vacuumed):
    cluster, dbname, spec = never_vacuumed
    table_bytes = cluster.sql("SELECT pg_relation_size('purged')", dbname=dbname)[0][0]
    outcome = run_check(spec, "dead_tuples").outcome
    assert outcome.status == CheckStatus.CRITICAL
    [row] = [f for f in outcome.findings if f["table"] == "purged"]
    assert row["n_dead_tup"] == 300000 and row["dead_pct"] == 100
    assert row["approx_dead_bytes"] == table_bytes > 10 * 1024 * 1024
    assert row["dead_bytes_source"].startswith("table size x dead ratio")
    assert "~0 B" not in outcome.summary and "MB by table size x dead ratio" in outcome.summary


def test_dead_bytes_come_from_pgstattuple_approx_when_installed(never_vacuumed):
    cluster, dbname, spec = never_vacuumed
    cluster.sql("CREATE EXTENSION pgstattuple", dbname=dbname)
    outcome = run_check(spec, "dead_tuples").outcome
    [row] = [f for f in outcome.findings if f["table"] == "purged"]
    assert row["dead_bytes_source"] == "pgstattuple_approx"
    # The dead tuples' own length: most of the table, less page headers and free space.
    assert 0.5 * row["table_bytes"] < row["approx_dead_bytes"] <= row["table_bytes"]
    assert "by pgstattuple_approx" in outcome.summary

    # A role that may not run it (no pg_stat_scan_tables) falls back to the table's size.
    limited = run_check(cluster.spec(dbname, user=LIMITED_ROLE), "dead_tuples").outcome
    [row] = [f for f in limited.findings if f["table"] == "purged"]
    assert row["dead_bytes_source"].startswith("table size x dead ratio")
    assert "permission denied" in row["pgstattuple_error"]


def test_dead_tuples_below_thresholds_are_ok(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE calm (id int); INSERT INTO calm SELECT generate_series(1, 100)", dbname=dbname
    )
    outcome = run_check(spec, "dead_tuples").outcome
    assert outcome.status == CheckStatus.OK


def test_invalid_index_from_failed_concurrent_build_is_reported(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql("CREATE TABLE dup (v int); INSERT INTO dup VALUES (1), (1)", dbname=dbname)
    with pytest.raises(Exception, match="could not create unique index"):
        cluster.sql("CREATE UNIQUE INDEX CONCURRENTLY dup_v_key ON dup (v)", dbname=dbname)

    outcome = run_check(spec, "invalid_indexes").outcome

    assert outcome.status == CheckStatus.WARNING
    [row] = outcome.findings
    assert row["index"] == "dup_v_key" and row["table"] == "dup" and row["is_unique"]
    assert "REINDEX INDEX CONCURRENTLY" in row["fix"]
    assert "dup_v_key" in outcome.summary


def test_no_invalid_index_is_ok(target_spec):
    outcome = run_check(target_spec, "invalid_indexes").outcome
    assert outcome.status == CheckStatus.OK


def test_sequences_near_exhaustion_measured_against_the_column_type(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        # 95.5 % of an integer sequence.
        "CREATE SEQUENCE near_end AS integer; SELECT setval('near_end', 2050000000);"
        # A bigint sequence (0.0002 % used by its own range) feeding an integer column: 88.5 %.
        "CREATE TABLE narrow (id int); CREATE SEQUENCE wide_seq OWNED BY narrow.id;"
        "ALTER TABLE narrow ALTER id SET DEFAULT nextval('wide_seq');"
        "SELECT setval('wide_seq', 1900000000);"
        "CREATE SEQUENCE roomy; SELECT setval('roomy', 10);",
        dbname=dbname,
    )

    outcome = run_check(spec, "sequence_exhaustion").outcome

    assert outcome.status == CheckStatus.CRITICAL
    rows = {f["sequence"]: f for f in outcome.findings}
    assert rows["near_end"]["status"] == "critical" and rows["near_end"]["used_pct"] >= 95
    assert rows["wide_seq"]["status"] == "warning"
    assert rows["wide_seq"]["limited_by_column"] is True
    assert rows["wide_seq"]["effective_max"] == 2147483647
    assert "narrow.id integer" in rows["wide_seq"]["columns"]
    assert "roomy" not in rows  # far from its end: not a finding
    assert "near_end" in outcome.summary


def test_unreadable_sequences_are_a_coverage_gap(fresh_db):
    cluster, dbname, _ = fresh_db
    cluster.sql("CREATE SEQUENCE private_seq", dbname=dbname)
    outcome = run_check(cluster.spec(dbname, user=LIMITED_ROLE), "sequence_exhaustion").outcome
    assert outcome.status == CheckStatus.WARNING
    assert "coverage gap" in outcome.summary
    assert "GRANT SELECT ON ALL SEQUENCES IN SCHEMA public" in outcome.fix


def test_xid_wraparound_reports_ages_against_thresholds(target_spec):
    outcome = run_check(target_spec, "xid_wraparound").outcome
    assert outcome.status == CheckStatus.OK
    databases = [f for f in outcome.findings if f["scope"] == "database"]
    assert {"postgres", "quell_target", "template0"} <= {f["database"] for f in databases}
    assert all(f["xid_age"] >= 0 for f in databases)
    assert any(f["scope"] == "table" for f in outcome.findings)
    assert "autovacuum_freeze_max_age 200,000,000" in outcome.summary

    assert (
        run_check(target_spec, "xid_wraparound", warning_age=1, critical_age=10**9).outcome.status
        == CheckStatus.WARNING
    )
    assert (
        run_check(target_spec, "xid_wraparound", warning_age=1, critical_age=1).outcome.status
        == CheckStatus.CRITICAL
    )


def test_xid_age_past_autovacuum_freeze_max_age_factor_warns(target_spec):
    outcome = run_check(target_spec, "xid_wraparound", freeze_max_age_factor=1e-9).outcome
    assert outcome.status == CheckStatus.WARNING
    assert "autovacuum_freeze_max_age" in outcome.summary
    assert any(f.get("autovacuum_behind") for f in outcome.findings)


def test_many_sequences_read_only_the_narrow_ones(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE SEQUENCE near_end AS integer; SELECT setval('near_end', 2050000000);"
        "CREATE SEQUENCE wide_one; SELECT setval('wide_one', 10);"
        "CREATE SEQUENCE capped MAXVALUE 1000; SELECT setval('capped', 990);",
        dbname=dbname,
    )
    # Past `read_all_max` sequences, wide-range (bigint) ones are not opened one by one.
    outcome = run_check(spec, "sequence_exhaustion", read_all_max=0).outcome
    found = {f["sequence"] for f in outcome.findings}
    assert {"near_end", "capped"} <= found
    assert outcome.status == CheckStatus.CRITICAL
    assert "1 wide-range (bigint) sequences not read" in outcome.summary


def test_index_being_built_concurrently_is_not_reported_invalid(fresh_db, holders):
    cluster, dbname, spec = fresh_db
    cluster.sql("CREATE TABLE building (v int); INSERT INTO building VALUES (1)", dbname=dbname)
    # An open writing transaction makes CREATE INDEX CONCURRENTLY wait after creating its (not
    # yet valid) index entry: exactly the state a naive check reports as an invalid index.
    writer = holders(cluster, dbname).send("BEGIN; INSERT INTO building VALUES (2);")
    writer.wait_state("state = 'idle in transaction'")
    builder = holders(cluster, dbname).send("CREATE INDEX CONCURRENTLY building_v ON building (v);")
    builder.wait_state("wait_event_type = 'Lock'")
    assert cluster.sql(
        "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = 'building_v'::regclass",
        dbname=dbname,
    )[0][0]

    outcome = run_check(spec, "invalid_indexes").outcome

    assert outcome.status == CheckStatus.OK
    assert "1 index build in progress skipped" in outcome.summary


def test_unused_and_duplicate_indexes_are_listed_as_candidates(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE dups (id int PRIMARY KEY, a int, b int);"
        "INSERT INTO dups SELECT g, g % 10, g FROM generate_series(1, 1000) g;"
        "CREATE INDEX dups_a ON dups (a); CREATE INDEX dups_ab ON dups (a, b);"
        "CREATE INDEX dups_a_again ON dups (a); CREATE INDEX dups_b ON dups (b);"
        "CREATE UNIQUE INDEX dups_b_unique ON dups (b);"
        "CREATE TABLE used (c int); INSERT INTO used SELECT generate_series(1, 1000);"
        "CREATE INDEX used_c ON used (c); ANALYZE",
        dbname=dbname,
    )
    with cluster.connect(dbname) as conn:  # used_c gets scanned
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT * FROM used WHERE c = 5")
    cluster.wait_for(
        "SELECT idx_scan > 0 FROM pg_stat_user_indexes WHERE indexrelname = 'used_c'",
        dbname=dbname,
    )

    duplicates = run_check(spec, "duplicate_indexes").outcome
    assert duplicates.status == CheckStatus.OK  # informational by default
    names = {f["index"] for f in duplicates.findings}
    # dups_a and dups_a_again are prefixes of dups_ab; dups_b is covered by the unique one;
    # a unique index is never the one to drop.
    assert names == {"dups_a", "dups_a_again", "dups_b"}
    assert all(f["fix"].startswith("DROP INDEX CONCURRENTLY") for f in duplicates.findings)

    unused = run_check(spec, "unused_indexes", min_bytes=0).outcome
    unused_names = {f["index"] for f in unused.findings}
    assert {"dups_a", "dups_a_again", "dups_b"} <= unused_names
    assert "used_c" not in unused_names  # scanned
    assert "dups_pkey" not in unused_names and "dups_b_unique" not in unused_names
    assert (
        run_check(spec, "unused_indexes", min_bytes=0, as_warning=True).outcome.status
        == CheckStatus.WARNING
    )
    assert run_check(spec, "unused_indexes").outcome.summary.startswith("no unused index")
