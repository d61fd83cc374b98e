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

    assert outcome.status == CheckStatus.WARNING
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
    assert f"root blocker pid {a.pid}" in outcome.summary


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
