"""Database and table sizes: approximate, capped, and never waiting behind a catalog lock."""

import time

import pytest

from diagnostics.checks import CheckStatus
from diagnostics.target import Timeouts
from tests.diagnostics.clusters import run_check

pytestmark = pytest.mark.slow


@pytest.fixture
def sized_db(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE big (id int PRIMARY KEY, pad text);"
        "INSERT INTO big SELECT g, repeat('y', 200) FROM generate_series(1, 20000) g;"
        "CREATE TABLE small (id int); INSERT INTO small VALUES (1);"
        "CREATE SEQUENCE locked_seq; ANALYZE",
        dbname=dbname,
    )
    return cluster, dbname, spec


def test_largest_tables_listed_with_approximate_and_exact_sizes(sized_db):
    _, _, spec = sized_db
    outcome = run_check(spec, "table_sizes", limit=5, exact=1).outcome
    assert outcome.status == CheckStatus.OK
    top = outcome.findings[0]
    assert top["table"] == "big"
    assert top["approx_total_bytes"] > 4_000_000
    assert top["approx_index_bytes"] > 0
    assert top["total_bytes"] >= top["approx_table_bytes"]  # exact for the top one
    assert outcome.findings[1]["total_bytes"] is None  # beyond `exact`: approximate only
    assert len(outcome.findings) <= 5
    assert "largest: public.big" in outcome.summary


def test_database_sizes_cover_this_and_other_databases(sized_db):
    _, dbname, spec = sized_db
    outcome = run_check(spec, "database_sizes").outcome
    assert outcome.status == CheckStatus.OK
    this = outcome.findings[0]
    assert this["database"] == dbname and this["approximate"] is True
    assert this["tables"] == 2
    others = {f["database"]: f for f in outcome.findings[1:]}
    assert others["postgres"]["bytes"] > 0
    assert outcome.metrics["database_bytes"] > 4_000_000


def test_exclusively_locked_table_is_marked_not_waited_for(sized_db, holders):
    cluster, dbname, spec = sized_db
    # A migration mid-flight: ACCESS EXCLUSIVE on a table and (DROP, never committed) a sequence.
    locker = holders(cluster, dbname).send(
        "BEGIN; LOCK TABLE big IN ACCESS EXCLUSIVE MODE; DROP SEQUENCE locked_seq;"
    )
    locker.wait_state("state = 'idle in transaction'")
    timeouts = Timeouts(connect_s=2, statement_ms=2000, lock_ms=100)

    started = time.monotonic()
    sizes = run_check(spec, "table_sizes", timeouts=timeouts, exact=5).outcome
    sequences = run_check(spec, "sequence_exhaustion", timeouts=timeouts).outcome
    elapsed = time.monotonic() - started

    assert elapsed < 2.0  # neither waited for the lock
    [big] = [f for f in sizes.findings if f.get("table") == "big"]
    assert big["catalog_locked"] is True and big["status"] == "skipped"
    assert big["total_bytes"] is None and big["approx_total_bytes"] > 0
    assert "catalog locked" in sizes.summary
    [small] = [f for f in sizes.findings if f.get("table") == "small"]
    assert small["total_bytes"] is not None  # the others are still measured
    [seq] = [f for f in sequences.findings if f.get("sequence") == "locked_seq"]
    assert seq["status"] == "skipped" and seq["catalog_locked"] is True

    # The process is free afterwards: a full run completes while the lock is still held.
    assert run_check(spec, "connection").outcome.status == CheckStatus.OK
