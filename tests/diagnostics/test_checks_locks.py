"""Blocking chains: three sessions, C waits on B which waits on A (idle in transaction)."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import LIMITED_ROLE, run_check

pytestmark = pytest.mark.slow


@pytest.fixture
def chain(fresh_db, holders):
    """A holds a row of lock_a; B holds a row of lock_b and waits for A; C waits for B."""
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE lock_a (id int PRIMARY KEY, v int); INSERT INTO lock_a VALUES (1, 0);"
        "CREATE TABLE lock_b (id int PRIMARY KEY, v int); INSERT INTO lock_b VALUES (1, 0);",
        dbname=dbname,
    )
    a = holders(cluster, dbname).send("BEGIN; UPDATE lock_a SET v = v + 1 WHERE id = 1;")
    a.wait_state("state = 'idle in transaction'")
    b = holders(cluster, dbname).send(
        "BEGIN; UPDATE lock_b SET v = v + 1 WHERE id = 1; UPDATE lock_a SET v = v + 1 WHERE id = 1;"
    )
    b.wait_state("wait_event_type = 'Lock'")
    c = holders(cluster, dbname).send("UPDATE lock_b SET v = v + 1 WHERE id = 1;")
    c.wait_state("wait_event_type = 'Lock' AND clock_timestamp() - state_change > interval '0.3 s'")
    return spec, a, b, c


def test_blocking_chain_of_three_sessions_names_the_root_blocker(chain):
    spec, a, b, c = chain

    outcome = run_check(spec, "blocking_locks", wait_warning_s=0.2).outcome

    # Two UPDATEs wait: blocked writers make the chain critical at once, whatever the wait.
    assert outcome.status == CheckStatus.CRITICAL
    assert "(blocks 2 writers)" in outcome.summary
    blocked = {f["pid"]: f for f in outcome.findings if f["role"] == "blocked"}
    roots = {f["pid"]: f for f in outcome.findings if f["role"] == "root_blocker"}
    assert set(blocked) == {b.pid, c.pid}
    assert set(roots) == {a.pid}
    assert blocked[b.pid]["blocked_by"] == [a.pid]
    assert blocked[c.pid]["blocked_by"] == [b.pid]
    assert blocked[c.pid]["root_blockers"] == [a.pid]
    assert blocked[c.pid]["depth"] == 2
    assert blocked[b.pid]["mode"] == "ShareLock"  # waiting for A's transaction to end
    assert blocked[c.pid]["relation"] in ("lock_b", "public.lock_b")
    assert blocked[c.pid]["wait_s"] >= 0.2
    assert "UPDATE lock_b" in blocked[c.pid]["query"]
    root = roots[a.pid]
    assert root["state"] == "idle in transaction"
    assert sorted(root["blocking"]) == sorted([b.pid, c.pid])
    assert any(h["relation"] in ("lock_a", "public.lock_a") for h in root["holds"])
    assert outcome.metrics["blocked"] == 2 and outcome.metrics["chain_depth"] == 2
    assert root["worst"] is True
    assert all(f["writer"] for f in blocked.values())
    assert outcome.metrics["blocked_writers"] == 2
    # The summary names the root blocker's application, state and open transaction.
    assert (
        f"root blocker pid {a.pid} (application '{a.app}', user postgres, idle in transaction, "
        "transaction open " in outcome.summary
    )


def test_blocking_chain_of_depth_two_without_the_writer_rule_is_graded_by_wait(chain):
    spec, *_ = chain
    outcome = run_check(spec, "blocking_locks", wait_warning_s=0.2, writers_critical=False).outcome
    assert outcome.status == CheckStatus.WARNING  # depth 2 is not deeper than 2


def test_blocking_chain_deeper_than_two_is_critical_at_once(chain, holders):
    spec, _, b, c = chain
    cluster = b.cluster
    # D updates the same row as C: C holds the row's tuple lock while it waits for B, so D
    # waits for C: D -> C -> B -> A.
    d = holders(cluster, c.dbname).send("UPDATE lock_b SET v = v + 1 WHERE id = 1;")
    d.wait_state("wait_event_type = 'Lock'")
    outcome = run_check(
        spec, "blocking_locks", wait_warning_s=600, wait_critical_s=900, writers_critical=False
    ).outcome
    assert outcome.metrics["chain_depth"] == 3
    assert outcome.status == CheckStatus.CRITICAL
    assert "chain depth 3 > 2" in outcome.summary


@pytest.fixture
def readers(fresh_db, holders):
    """A takes ACCESS EXCLUSIVE on a table and idles; two SELECTs wait behind it."""
    cluster, dbname, spec = fresh_db
    cluster.sql("CREATE TABLE reports (id int PRIMARY KEY)", dbname=dbname)
    a = holders(cluster, dbname).send("BEGIN; LOCK TABLE reports IN ACCESS EXCLUSIVE MODE;")
    a.wait_state("state = 'idle in transaction'")
    waiting = []
    for _ in range(2):
        reader = holders(cluster, dbname).send("SELECT count(*) FROM reports;")
        reader.wait_state("wait_event_type = 'Lock'")
        waiting.append(reader)
    return cluster, dbname, spec, a, waiting


def test_blocked_readers_are_graded_by_wait_and_count_and_a_writer_makes_it_critical(
    readers, holders
):
    cluster, dbname, spec, a, waiting = readers
    outcome = run_check(spec, "blocking_locks", wait_warning_s=600, wait_critical_s=900).outcome
    assert outcome.status == CheckStatus.OK  # two short waits of readers: below every limit
    assert {f["pid"] for f in outcome.findings if f["role"] == "blocked"} == {
        r.pid for r in waiting
    }
    assert not any(f.get("writer") for f in outcome.findings)
    assert f"root blocker pid {a.pid}" in outcome.summary

    many = run_check(
        spec, "blocking_locks", wait_warning_s=600, wait_critical_s=900, blocked_critical_count=2
    ).outcome
    assert many.status == CheckStatus.CRITICAL
    assert "blocks 2 sessions (limit 2)" in many.summary

    writer = holders(cluster, dbname).send("INSERT INTO reports VALUES (1);")
    writer.wait_state("wait_event_type = 'Lock'")
    outcome = run_check(spec, "blocking_locks", wait_warning_s=600, wait_critical_s=900).outcome
    assert outcome.status == CheckStatus.CRITICAL
    [row] = [f for f in outcome.findings if f.get("pid") == writer.pid]
    assert row["writer"] is True and row["mode"] == "RowExclusiveLock"
    assert "blocks 1 writer" in outcome.summary


def test_blocking_chain_goes_critical_past_the_wait_limit(chain):
    spec, *_ = chain
    outcome = run_check(spec, "blocking_locks", wait_warning_s=0.1, wait_critical_s=0.2).outcome
    assert outcome.status == CheckStatus.CRITICAL


def test_blocking_chain_is_visible_to_a_role_without_pg_monitor(chain, fresh_db):
    cluster, dbname, _ = fresh_db
    _, _, b, c = chain
    limited = cluster.spec(dbname, user=LIMITED_ROLE)
    outcome = run_check(limited, "blocking_locks", wait_warning_s=0.2).outcome
    # pg_locks is readable by everyone: the chain is found, only the query texts are hidden.
    assert {f["pid"] for f in outcome.findings if f["role"] == "blocked"} == {b.pid, c.pid}
    assert outcome.fix == f"GRANT pg_monitor TO {LIMITED_ROLE};"
    assert "hidden" in outcome.summary


def test_no_blocked_session_is_ok(target_spec):
    outcome = run_check(target_spec, "blocking_locks").outcome
    assert outcome.status == CheckStatus.OK
    assert outcome.findings == []
