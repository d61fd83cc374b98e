"""Real concurrency against PostgreSQL, and signals that wait for the commit.

These tests commit for real (transaction=True), so each thread sees the others' work.
"""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from incidents import services, signals
from incidents.models import EventKind, Incident, Status
from incidents.services import IncidentConflict

pytestmark = pytest.mark.django_db(transaction=True)


def _waiting_on_locks(dbname: str) -> int:
    """Sessions of this database blocked on a lock right now."""
    with connections["default"].cursor() as cursor:
        # pg_stat_activity is read once per transaction unless the snapshot is dropped.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            [dbname],
        )
        return cursor.fetchone()[0]


def _race(incident_id: int, *, expected_status: str | None, commander) -> list:
    """Two threads try the same transition while the main thread holds the row lock.

    Both threads pass a barrier and block on the lock; only when both are seen waiting does the
    main thread release it. The outcome then cannot depend on scheduling.
    """
    barrier = threading.Barrier(2)
    outcomes: list = []
    lock = threading.Lock()

    def attempt():
        try:
            barrier.wait(timeout=10)
            services.incident_transition(
                incident_id=incident_id,
                to_status=Status.IDENTIFIED,
                expected_status=expected_status,
                actor=commander,
            )
            result = "won"
        except IncidentConflict as exc:
            result = exc
        except Exception as exc:  # surfaced by the assertions below
            result = exc
        finally:
            connection.close()  # each thread has its own connection; do not leak it
        with lock:
            outcomes.append(result)

    dbname = connection.settings_dict["NAME"]
    with transaction.atomic():
        Incident.objects.select_for_update().get(pk=incident_id)
        threads = [threading.Thread(target=attempt) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while _waiting_on_locks(dbname) < 2:
            assert time.monotonic() < deadline, "the two transitions never queued on the lock"
            time.sleep(0.01)
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    return outcomes


@pytest.mark.parametrize(
    "expected_status", [Status.INVESTIGATING, None], ids=["expected-status", "no-expectation"]
)
def test_two_concurrent_transitions_one_wins_other_conflicts(commander, expected_status):
    incident = services.incident_declare(title="Connection storm", severity="SEV2")
    outcomes = _race(incident.pk, expected_status=expected_status, commander=commander)
    assert outcomes.count("won") == 1, outcomes
    losers = [o for o in outcomes if o != "won"]
    assert len(losers) == 1
    assert isinstance(losers[0], IncidentConflict), losers
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED
    assert incident.timeline.filter(kind=EventKind.STATUS_CHANGED).count() == 1


def test_signals_are_sent_after_commit_only():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs["incident_id"])

    signals.incident_declared.connect(receiver)
    try:
        with transaction.atomic():
            incident = services.incident_declare(title="Disk full", severity="SEV1")
            assert received == []  # still inside the transaction
        assert received == [incident.pk]

        class Abort(Exception):
            pass

        with pytest.raises(Abort), transaction.atomic():
            services.incident_declare(title="Rolled back", severity="SEV1")
            raise Abort
        assert received == [incident.pk]  # the rolled-back declaration never announced itself
        assert not Incident.objects.filter(title="Rolled back").exists()
    finally:
        signals.incident_declared.disconnect(receiver)


def test_lifecycle_signals_carry_their_arguments(commander):
    got = []

    def capture(signal_name):
        def receiver(sender, **kwargs):
            got.append((signal_name, kwargs))

        return receiver

    receivers = {
        name: capture(name)
        for name in ("incident_status_changed", "incident_resolved", "incident_closed")
    }
    for name, fn in receivers.items():
        getattr(signals, name).connect(fn)
    try:
        incident = services.incident_declare(title="Lag", severity="SEV3")
        services.incident_transition(
            incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
        )
        services.incident_transition(
            incident_id=incident.pk, to_status=Status.CLOSED, actor=commander
        )
    finally:
        for name, fn in receivers.items():
            getattr(signals, name).disconnect(fn)
    names = [name for name, _ in got]
    assert names == [
        "incident_status_changed",
        "incident_resolved",
        "incident_status_changed",
        "incident_closed",
    ]
    assert got[0][1]["from_status"] == "investigating"
    assert got[0][1]["to_status"] == "resolved"
    assert all(kw["actor_id"] == commander.pk for _, kw in got)
    assert all(kw["incident_id"] == incident.pk for _, kw in got)
