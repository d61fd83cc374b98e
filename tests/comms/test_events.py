"""comms.events: each function records its kind, message and data on the incident's timeline."""

import datetime

import pytest
from django.utils import timezone

from comms import events
from comms.models import ComponentState
from comms.selectors import UpdateDue
from incidents.models import EventKind
from tests.factories import (
    ComponentFactory,
    DeliveryFactory,
    IncidentFactory,
    MessageTemplateFactory,
    StatusUpdateFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

CHANNELS_ADMIN = "Admin → Communications → Channels"


def _due(minutes: int = 5) -> UpdateDue:
    return UpdateDue(
        due_at=timezone.now() - datetime.timedelta(minutes=minutes),
        overdue=True,
        reason="next update",
        last_update_at=None,
        every_minutes=30,
    )


def test_component_state_changed_names_the_component_and_who():
    incident = IncidentFactory()
    user = UserFactory(role="commander")
    component = ComponentFactory(name="Checkout API", state=ComponentState.MAJOR_OUTAGE)
    event = events.component_state_changed_event(
        component, incident_id=incident.pk, from_state=ComponentState.OPERATIONAL, actor=user
    )
    assert (event.kind, event.message) == (
        EventKind.COMMS,
        "Status page: Checkout API is now Major outage",
    )
    assert event.data == {"component_id": component.pk, "from": "operational", "to": "major_outage"}
    assert event.actor == user and event.actor_label == ""


def test_component_state_changed_by_the_system_is_quell():
    incident = IncidentFactory()
    component = ComponentFactory(state=ComponentState.DEGRADED)
    event = events.component_state_changed_event(
        component, incident_id=incident.pk, from_state=ComponentState.OPERATIONAL
    )
    assert event.actor is None and event.actor_label == "quell"


def test_delivery_failed_and_retried():
    incident = IncidentFactory()
    delivery = DeliveryFactory(
        incident=incident, destination="ops-slack", attempts=6, error="HTTP 500"
    )
    failed = events.delivery_failed_event(delivery)
    assert failed.kind == EventKind.COMMS
    assert failed.message == "Delivery to ops-slack failed after 6 attempt(s): HTTP 500"
    assert failed.data == {"delivery_id": delivery.pk, "state": "failed", "error": "HTTP 500"}
    assert failed.actor_label == "quell"

    user = UserFactory(role="responder")
    retried = events.delivery_retried_event(delivery, actor=user)
    assert retried.message == "Retrying the failed delivery to ops-slack"
    assert retried.data == {"delivery_id": delivery.pk, "state": "retry"}
    assert retried.actor == user


def test_update_published_lists_its_destinations():
    template = MessageTemplateFactory(key="internal-progress")
    update = StatusUpdateFactory(subject="Still investigating", template=template)
    event = events.update_published_event(
        update,
        destinations=["ops-slack"],
        component_states={},
        actor=None,
        actor_label="quell",
    )
    assert event.kind == EventKind.COMMS
    assert event.message == "Internal update published: Still investigating"
    assert event.data == {
        "update_id": update.pk,
        "audience": "internal",
        "status": "investigating",
        "template": "internal-progress",
        "destinations": ["ops-slack"],
        "component_states": {},
    }


def test_internal_update_with_no_destination_says_it_reached_nobody():
    update = StatusUpdateFactory(subject="Still investigating", incident__severity="SEV1")
    event = events.update_published_event(update, destinations=[], component_states={})
    assert event.message.startswith(
        "Internal update published: Still investigating. Not delivered: no destination."
    )
    assert CHANNELS_ADMIN in event.message
    assert event.data["not_delivered"] == "no destination"
    assert event.data["template"] is None


def test_external_update_with_no_destination_still_reaches_the_status_page():
    update = StatusUpdateFactory(audience="external", subject="Resolved")
    event = events.update_published_event(update, destinations=[], component_states={"1": "x"})
    assert event.message == "External update published: Resolved"
    assert "not_delivered" not in event.data
    assert event.data["component_states"] == {"1": "x"}


def test_initial_notification_undelivered():
    incident = IncidentFactory(severity="SEV1")
    event = events.initial_notification_undelivered_event(incident)
    assert event.kind == EventKind.COMMS
    assert event.message.startswith("Initial notification not delivered: no destination.")
    assert CHANNELS_ADMIN in event.message
    assert event.data == {
        "initial_notification": "not delivered",
        "not_delivered": "no destination",
        "destinations": [],
    }
    assert event.actor_label == "quell"


def test_reminder_sent_and_undelivered():
    incident = IncidentFactory()
    lead = UserFactory(username="lead")
    due = _due()
    sent = events.reminder_sent_event(incident, due=due, owner=lead, destinations=["lead <l@x>"])
    assert sent.kind == EventKind.COMMS
    assert sent.message.startswith("Reminder: next update was due at ")
    assert sent.message.endswith("; reminded lead")
    assert sent.data == {
        "reminder": True,
        "due_at": due.due_at.isoformat(),
        "reminded_user_id": lead.pk,
        "destinations": ["lead <l@x>"],
    }

    missed = events.reminder_undelivered_event(incident, due=due, owner=None, subject="Update due")
    assert missed.message.startswith(
        "Reminder not delivered: no destination. The reminder to the Communications Lead that "
        "the next update was due at "
    )
    assert missed.data == {
        "reminder": True,
        "due_at": due.due_at.isoformat(),
        "reminded_user_id": None,
        "destinations": [],
        "not_delivered": "no destination",
        "meant_for": "the Communications Lead",
        "subject": "Update due",
    }
