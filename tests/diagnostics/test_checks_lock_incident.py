"""Catalog checks answer during a lock incident: a row lock held, an ALTER TABLE queued behind
it (ACCESS EXCLUSIVE, not granted), readers queued behind that (issue 12, item 1).

A queued ACCESS EXCLUSIVE request makes every later lock request on the table wait, ACCESS SHARE
included: anything that opens the table (size functions, pg_get_indexdef, reading it) would
wait for the migration. The checks read catalog columns instead, and make the few lock-taking
calls one relation at a time with a short lock_timeout.
"""

import time

import pytest

from diagnostics.checks import CheckStatus, registry
from diagnostics.runner import run_checks
from diagnostics.target import Timeouts, open_session

pytestmark = pytest.mark.slow

TIMEOUTS = Timeouts(connect_s=2, statement_ms=3000, lock_ms=100)

# Every check that reads relation catalogs (pg_class, pg_index, pg_namespace, pg_sequence,
# pg_depend, relation statistics or a user table).
CATALOG_CHECKS = [
    "dead_tuples",
    "xid_wraparound",
    "invalid_indexes",
    "sequence_exhaustion",
    "unused_indexes",
    "duplicate_indexes",
    "database_sizes",
    "table_sizes",
    "recent_migrations",
    "schema_changes",
    "cache_hit_ratio",
    "blocking_locks",
]


@pytest.fixture
def incident(fresh_db, holders):
    """A planted target mid-incident: `orders` and `django_migrations` each have an ALTER TABLE
    queued behind a row lock, and a reader queued behind the ALTER."""
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE orders (id serial PRIMARY KEY, code text, note text);"
        "INSERT INTO orders (code) SELECT 'c' || (g % 500) FROM generate_series(1, 3000) g;"
        "CREATE TABLE calm (id serial PRIMARY KEY, code text);"
        "INSERT INTO calm (code) SELECT 'k' || (g % 10) FROM generate_series(1, 500) g;"
        "CREATE TABLE django_migrations (id serial PRIMARY KEY, app text, name text,"
        " applied timestamptz);"
        "INSERT INTO django_migrations (app, name, applied) VALUES ('shop', '0001', now());"
        "ANALYZE",
        dbname=dbname,
    )
    for table in ("orders", "calm"):  # invalid indexes: a failed CREATE UNIQUE INDEX CONCURRENTLY
        with pytest.raises(Exception, match="could not create unique index"):
            cluster.sql(
                f"CREATE UNIQUE INDEX CONCURRENTLY {table}_code_bad ON {table} (code)",
                dbname=dbname,
            )
    row_lock = holders(cluster, dbname).send(
        "BEGIN; SELECT * FROM orders WHERE id = 1 FOR UPDATE;"
        " SELECT * FROM django_migrations FOR UPDATE;"
    )
    row_lock.wait_state("state = 'idle in transaction'")
    for table in ("orders", "django_migrations"):
        alter = holders(cluster, dbname).send(f"ALTER TABLE {table} ADD COLUMN extra int;")
        alter.wait_state("wait_event_type = 'Lock'")
    reader = holders(cluster, dbname).send("SELECT count(*) FROM orders;")
    reader.wait_state("wait_event_type = 'Lock'")
    # The ALTERs are queued, not granted: nobody holds ACCESS EXCLUSIVE yet.
    assert (
        cluster.sql(
            "SELECT count(*) FROM pg_locks WHERE mode = 'AccessExclusiveLock' AND granted"
            " AND locktype = 'relation'",
            dbname=dbname,
        )[0][0]
        == 0
    )
    return cluster, dbname, spec


def test_every_check_answers_while_an_alter_table_is_queued(incident):
    _, _, spec = incident
    started = time.monotonic()
    results = {e.key: e.outcome for e in run_checks(spec, registry.all(), timeouts=TIMEOUTS)}
    elapsed = time.monotonic() - started

    assert elapsed < 3.0  # nothing waited for the migration
    for key in CATALOG_CHECKS:
        assert key in results, key
    for key, outcome in results.items():
        assert outcome.status != CheckStatus.ERROR, (key, outcome.summary, outcome.error)
        assert "catalog locked: a relation is locked" not in outcome.summary, key


def test_invalid_indexes_are_found_and_the_locked_table_is_marked(incident):
    _, _, spec = incident
    [execution] = run_checks(spec, [registry.get("invalid_indexes")], timeouts=TIMEOUTS)
    outcome = execution.outcome
    assert outcome.status == CheckStatus.WARNING
    found = {f["index"]: f for f in outcome.findings}
    locked, calm = found["orders_code_bad"], found["calm_code_bad"]
    # The table behind the queued ALTER: found from the catalog, definition not read.
    assert locked["catalog_locked"] is True and locked["definition"] is None
    assert locked["method"] == "btree" and locked["columns"] == ["code"]
    assert locked["is_unique"] is True
    # Every other index is answered in full.
    assert calm["catalog_locked"] is False
    assert calm["definition"].startswith("CREATE UNIQUE INDEX calm_code_bad ON public.calm")
    assert "1 on catalog-locked tables" in outcome.summary


def test_table_sizes_measure_every_table_but_the_locked_one(incident):
    _, _, spec = incident
    [execution] = run_checks(
        spec,
        [registry.get("table_sizes")],
        thresholds={"table_sizes": {"exact": 10}},
        timeouts=TIMEOUTS,
    )
    outcome = execution.outcome
    assert outcome.status == CheckStatus.OK
    tables = {f.get("table"): f for f in outcome.findings if f.get("table")}
    assert tables["orders"]["catalog_locked"] is True and tables["orders"]["total_bytes"] is None
    assert tables["orders"]["approx_total_bytes"] > 0  # relpages * block_size, from the catalog
    assert tables["calm"]["catalog_locked"] is False and tables["calm"]["total_bytes"] > 0
    assert "catalog locked" in outcome.summary and "public.orders" in outcome.summary


def test_a_migration_table_behind_a_queued_alter_is_reported_locked(incident):
    _, _, spec = incident
    [execution] = run_checks(spec, [registry.get("recent_migrations")], timeouts=TIMEOUTS)
    outcome = execution.outcome
    assert outcome.status == CheckStatus.WARNING
    assert "public.django_migrations catalog locked" in outcome.summary
    [finding] = outcome.findings
    assert finding["catalog_locked"] is True and finding["status"] == "skipped"


def test_a_per_relation_call_gives_up_quickly_and_keeps_no_lock(incident):
    _, _, spec = incident
    sizes = "SELECT pg_relation_size(c.oid) AS bytes FROM pg_class c WHERE c.relname = %(name)s"
    with open_session(spec, TIMEOUTS) as session:
        # Not told about the lock (a race with the lock list): it times out and says None.
        started = time.monotonic()
        assert session.read_relation(sizes, {"name": "orders"}) is None
        assert time.monotonic() - started < 0.5
        # The session goes on, and the table it measured is not kept locked afterwards.
        [row] = session.read_relation(sizes, {"name": "calm"})
        assert row["bytes"] > 0
        held = session.scalar(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " WHERE l.pid = pg_backend_pid() AND c.relname IN ('calm', 'orders')"
        )
        assert held == 0
        assert session.scalar("SHOW lock_timeout") == "100ms"  # the short one was undone
