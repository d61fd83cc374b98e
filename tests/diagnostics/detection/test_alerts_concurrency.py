"""Two deliveries of the same alert at the same moment create one incident (real PostgreSQL,
real commits: transaction=True). They meet on the unique index of open alert groups."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.cache import cache
from django.db import connection, connections, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from diagnostics.detection.models import AlertGroup
from incidents.models import EventKind, Incident, TimelineEvent
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "race-secret"


def _waiting_on_locks(dbname: str) -> int:
    """Sessions waiting on a lock: the first delivery on the unique index's entry we hold, the
    second on the first's (declaring the same title takes the channel name's advisory lock)."""
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock'",
            [dbname],
        )
        return cursor.fetchone()[0]


@pytest.mark.parametrize("with_target", [True, False], ids=["known-target", "unknown-target"])
def test_two_simultaneous_deliveries_declare_one_incident(settings, monkeypatch, with_target):
    settings.QUELL_ALERT_WEBHOOK_TOKEN = SECRET
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    monkeypatch.setattr("diagnostics.services._enqueue", lambda pairs: None)
    cache.clear()
    labels = {"alertname": "PostgresTooManyConnections", "severity": "critical"}
    if with_target:
        target = make_target(name="race-primary", host="db1", database="orders")
        labels["quell_target"] = target.name
        key = f"target:{target.pk}"
    else:
        labels["instance"] = "nowhere:9187"
        key = "fingerprint:race-fp:performance"
    payload = {
        "version": "4",
        "receiver": "quell",
        "status": "firing",
        "alerts": [{"status": "firing", "labels": labels, "fingerprint": "race-fp"}],
    }
    answers: list = []
    guard = threading.Lock()

    def deliver():
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {SECRET}")
            resp = client.post("/api/v1/alerts/alertmanager/", payload, format="json")
            result = (resp.status_code, resp.json()["alerts"][0]["action"])
        except Exception as exc:  # surfaced by the assertions below
            result = exc
        finally:
            connection.close()
        with guard:
            answers.append(result)

    dbname = connection.settings_dict["NAME"]
    # Hold the key in an open transaction (as a third delivery about to commit would), so both
    # deliveries have routed, declared and queued on the index before either can bind it; then
    # give it up. The outcome cannot depend on thread scheduling.
    with transaction.atomic():
        holder = Incident.objects.create(
            title="holds the key",
            severity="SEV4",
            detected_at=timezone.now(),
            declared_at=timezone.now(),
        )
        AlertGroup.objects.create(key=key, kind="performance", incident=holder)
        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while _waiting_on_locks(dbname) < 2:
            assert time.monotonic() < deadline, "the two deliveries never queued on the key"
            time.sleep(0.01)
        transaction.set_rollback(True)
    for t in threads:
        t.join(timeout=10)
        assert not t.is_alive()
    assert sorted(answers) == [(200, "declared"), (200, "repeated")]
    assert Incident.objects.count() == 1
    assert TimelineEvent.objects.filter(kind=EventKind.ALERT).count() == 1
    assert AlertGroup.objects.filter(key=key, is_open=True).count() == 1
