"""Channel names: unique under concurrent declares, and found in one query however many exist."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents import services
from incidents.models import Incident


@pytest.mark.django_db(transaction=True)
def test_concurrent_declares_with_one_title_all_succeed_with_their_own_channel(responder):
    """Eight declares at once (each its own connection and transaction): no 500, no duplicate."""
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def declare():
        try:
            start.wait(timeout=10)
            services.incident_declare(
                title="Checkout writes failing", severity="SEV1", actor=responder
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=declare) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    names = list(Incident.objects.values_list("channel_name", flat=True))
    assert len(names) == 8
    assert len(set(names)) == 8
    day = timezone.localdate().isoformat()
    base = f"#incident-{day}-checkout-writes-failing"
    assert sorted(names) == sorted([base] + [f"{base}-{n}" for n in range(2, 9)])


@pytest.mark.django_db
def test_the_next_channel_name_costs_the_same_queries_with_many_namesakes(responder):
    services.incident_declare(title="Disk full", severity="SEV3", actor=responder)
    with CaptureQueriesContext(connection) as few:
        first = services.channel_name_for(title="Disk full", declared_at=timezone.now())
    for _ in range(40):
        services.incident_declare(title="Disk full", severity="SEV3", actor=responder)
    with CaptureQueriesContext(connection) as many:
        later = services.channel_name_for(title="Disk full", declared_at=timezone.now())
    assert first.endswith("-disk-full-2")
    assert later.endswith("-disk-full-42")
    assert len(few.captured_queries) <= 3
    assert len(many.captured_queries) <= 3
