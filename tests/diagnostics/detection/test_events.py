"""Every detection event function: its kind, message and data."""

from __future__ import annotations

import pytest

from diagnostics.detection import events
from diagnostics.detection.services import Signal
from incidents.models import EventKind
from tests.diagnostics.records import make_target
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def _signal(**overrides):
    values = {
        "source": "alertmanager",
        "fingerprint": "fp1",
        "status": "firing",
        "title": "PostgresqlDeadLocks",
        "severity": "SEV1",
        "kind": "performance",
        "summary": "3 deadlocks in 5 minutes",
        "data": {"labels": {"datname": "shop"}, "fingerprint": "spoofed"},
    }
    values.update(overrides)
    return Signal(**values)


def test_alert_firing_event_says_what_where_why_and_how_severe():
    incident = IncidentFactory(severity="SEV3")
    shop = make_target(name="shop")
    event = events.alert_firing_event(
        incident.pk,
        signal=_signal(target=shop),
        repeats=2,
        note="routed to the most severe of 2 open incidents on shop",
        above=incident,
        actor_label="alertmanager",
    )
    assert event.kind == EventKind.ALERT
    assert event.message == (
        "Alert firing: PostgresqlDeadLocks on shop - 3 deadlocks in 5 minutes (repeated 2 times"
        " since last recorded); routed to the most severe of 2 open incidents on shop. Its"
        " severity SEV1 is above the incident's SEV3: a commander decides whether to raise it"
    )
    # The sender's labels are kept; its payload cannot override detection's own keys.
    assert event.data["labels"] == {"datname": "shop"}
    assert event.data["fingerprint"] == "fp1"
    assert (event.data["target_name"], event.data["repeats"]) == ("shop", 2)


def test_alert_resolved_event_keeps_the_incident_open():
    incident = IncidentFactory()
    event = events.alert_resolved_event(
        incident.pk,
        signal=_signal(status="resolved", source="monitor", title="shop: connections"),
        repeats=0,
    )
    assert event.message == (
        "Monitor: shop: connections back within thresholds (the incident stays open until a"
        " responder resolves it)"
    )
    assert event.data["status"] == "resolved"
