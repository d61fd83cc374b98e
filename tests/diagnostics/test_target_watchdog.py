"""The target session's watchdog: one thread per session, armed per statement."""

import threading
import time

from diagnostics.remediation.backends import open_remediation_session
from diagnostics.target import Timeouts, Watchdog, open_session


def _watchdog_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "quell-target-watchdog"]


def test_watchdog_cuts_once_a_deadline_passes_and_never_after_disarm():
    cuts = []
    watchdog = Watchdog(lambda: cuts.append(time.monotonic()))
    try:
        watchdog.arm(0.05)
        watchdog.disarm()
        time.sleep(0.15)
        assert cuts == []

        armed = time.monotonic()
        watchdog.arm(0.05)
        deadline = time.monotonic() + 2
        while not cuts and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(cuts) == 1 and cuts[0] - armed >= 0.05

        # A later, longer deadline replaces an earlier one and fires again.
        watchdog.arm(0.05)
        time.sleep(0.2)
        assert len(cuts) == 2
    finally:
        watchdog.close()
    assert not watchdog.running


def test_a_session_runs_many_statements_under_one_watchdog_thread(db, fresh_db):
    _cluster, _dbname, spec = fresh_db
    before = len(_watchdog_threads())
    seen = []
    with open_session(spec, Timeouts(connect_s=2, statement_ms=2000, lock_ms=100)) as session:
        for _ in range(50):
            assert session.scalar("SELECT 1") == 1
            seen.append(len(_watchdog_threads()))
        # The session's timeouts were set in one round trip with its BEGIN.
        assert session.scalar("SHOW statement_timeout") == "2s"
        assert session.scalar("SHOW lock_timeout") == "100ms"
        assert session.scalar("SHOW transaction_read_only") == "on"
        assert session.scalar("SHOW jit") == "off"
    assert set(seen) == {before + 1}
    assert len(_watchdog_threads()) == before  # stopped with the session


def test_a_remediation_statement_runs_with_its_timeouts_in_its_own_transaction(db, fresh_db):
    _cluster, _dbname, spec = fresh_db
    timeouts = Timeouts(connect_s=2, statement_ms=1500, lock_ms=80)
    before = len(_watchdog_threads())
    with open_remediation_session(spec, timeouts) as session:
        row = session.run(
            "SELECT current_setting('statement_timeout') AS statement,"
            " current_setting('lock_timeout') AS lock"
        )[0]
        assert row == {"statement": "1500ms", "lock": "80ms"}
        # Committed: the SET LOCALs ended with the transaction.
        assert session.scalar("SHOW statement_timeout") == "0"
    assert len(_watchdog_threads()) == before


def test_arming_the_same_period_again_does_not_wake_the_watcher():
    cuts = []
    watchdog = Watchdog(lambda: cuts.append(1))
    wakes = []
    condition = watchdog._cond
    original_notify = condition.notify

    def counting_notify(n=1):
        wakes.append(n)
        original_notify(n)

    condition.notify = counting_notify
    try:
        watchdog.arm(5)  # starts the watcher, which goes to sleep on this deadline
        time.sleep(0.05)
        wakes.clear()
        for _ in range(200):
            watchdog.disarm()
            watchdog.arm(5)
        # No later arm of the same period comes sooner than the watcher's next look.
        assert wakes == []
        watchdog.arm(0.05)  # a sooner deadline does wake it, and it fires
        deadline = time.monotonic() + 2
        while not cuts and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cuts == [1]
    finally:
        watchdog.close()
