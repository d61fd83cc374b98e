import datetime

import pytest
from django.test import Client
from django.utils import timezone

from comms import selectors, services
from comms.models import Channel, Delivery, DeliveryKind, MessageTemplate, ReminderLog
from incidents import services as incident_services
from incidents.models import EventKind, Incident, Status
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _age(incident, minutes):
    past = timezone.now() - datetime.timedelta(minutes=minutes)
    Incident.objects.filter(pk=incident.pk).update(declared_at=past, detected_at=past)
    incident.refresh_from_db()
    return incident


def test_sev1_owes_a_first_external_update_within_five_minutes(incident_factory, commander):
    incident = incident_factory(severity="SEV1")
    due = selectors.incident_update_due(incident)
    assert due.reason == "first external update" and not due.overdue
    assert round((due.due_at - incident.declared_at).total_seconds()) == 300
    _age(incident, 6)
    assert selectors.incident_update_due(incident).overdue
    # An internal update does not satisfy the first external deadline...
    internal = MessageTemplate.objects.get(key="internal-update")
    services.update_create_and_publish(
        incident_id=incident.pk, template_id=internal.pk, actor=commander
    )
    assert selectors.incident_update_due(incident).overdue
    # ...an external one does, and the 20-minute cadence starts.
    external = MessageTemplate.objects.get(key="external-investigating")
    services.update_create_and_publish(
        incident_id=incident.pk, template_id=external.pk, actor=commander
    )
    due = selectors.incident_update_due(incident)
    assert not due.overdue and due.reason == "next update" and due.every_minutes == 20


@pytest.mark.parametrize(
    ("severity", "minutes", "overdue"),
    [("SEV2", 59, False), ("SEV3", 239, False), ("SEV3", 241, True), ("SEV4", 10_000, False)],
)
def test_cadence_by_severity(incident_factory, commander, severity, minutes, overdue):
    incident = incident_factory(severity=severity)
    if severity == "SEV2":
        external = MessageTemplate.objects.get(key="external-investigating")
        services.update_create_and_publish(
            incident_id=incident.pk, template_id=external.pk, actor=commander
        )
        incident.status_updates.update(
            published_at=timezone.now() - datetime.timedelta(minutes=minutes)
        )
    else:
        _age(incident, minutes)
    assert selectors.incident_update_due(incident).overdue is overdue


def test_cadence_is_configurable(settings, incident_factory):
    settings.QUELL_UPDATE_CADENCE = {"SEV4": {"every_minutes": 5}}
    incident = _age(incident_factory(severity="SEV4"), 6)
    assert selectors.incident_update_due(incident).overdue


def test_resolved_incident_owes_no_update(incident_factory, commander):
    incident = _age(incident_factory(severity="SEV1"), 60)
    incident_services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    incident.refresh_from_db()
    assert not selectors.incident_update_due(incident).overdue


def test_reminder_goes_to_the_communications_lead_once_per_due_time(
    incident_factory, commander, receiver, django_capture_on_commit_callbacks
):
    lead = UserFactory(username="comms-lead", role="responder", email="lead@example.com")
    Channel.objects.create(
        name="ops", kind="slack", audience="internal", url=receiver.url, receives_reminders=True
    )
    Channel.objects.create(name="quiet", kind="slack", audience="internal", url=receiver.url)
    incident = incident_factory(severity="SEV1")
    incident_services.role_assign(
        incident_id=incident.pk, role="communications_lead", user=lead, actor=commander
    )
    _age(incident, 10)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reminders_send_due() == 1
        assert services.reminders_send_due() == 0  # same due time: no second reminder
    rows = Delivery.objects.filter(kind=DeliveryKind.REMINDER, incident=incident)
    assert sorted(rows.values_list("destination", flat=True)) == [
        "comms-lead <lead@example.com>",
        "ops",
    ]
    assert "@comms-lead" in rows.first().body
    assert ReminderLog.objects.get(incident=incident).reminded_user == lead
    event = incident.timeline.filter(kind=EventKind.COMMS, data__reminder=True).get()
    assert "comms-lead" in event.message


def test_reminder_falls_back_to_the_incident_commander(
    incident_factory, commander, django_capture_on_commit_callbacks
):
    ic = UserFactory(username="ic", role="commander", email="ic@example.com")
    incident = incident_factory(severity="SEV3")
    incident_services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=ic, actor=commander
    )
    _age(incident, 300)
    with django_capture_on_commit_callbacks(execute=False):
        services.reminders_send_due()
    assert Delivery.objects.get(kind=DeliveryKind.REMINDER).recipients == ["ic@example.com"]


def test_publishing_clears_the_overdue_state(incident_factory, commander):
    incident = _age(incident_factory(severity="SEV3"), 300)
    assert [i.pk for i, _ in selectors.overdue_incidents()] == [incident.pk]
    template = MessageTemplate.objects.get(key="internal-update")
    services.update_create_and_publish(
        incident_id=incident.pk, template_id=template.pk, actor=commander
    )
    assert selectors.overdue_incidents() == []


def test_beat_schedule_declares_the_reminder_task(settings):
    from comms import tasks  # noqa: F401  (registers the task names)
    from config.celery import app

    entry = settings.CELERY_BEAT_SCHEDULE["comms-reminders"]
    assert entry["task"] == "comms.reminders_send_due"
    assert entry["task"] in app.tasks


def test_reminder_repeats_while_the_update_stays_overdue(
    settings, incident_factory, django_capture_on_commit_callbacks
):
    settings.QUELL_COMMS_REMINDER_REPEAT_MINUTES = 15
    incident = _age(incident_factory(severity="SEV3"), 250)  # due 10 minutes ago
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reminders_send_due(now=now) == 1
        assert services.reminders_send_due(now=now + datetime.timedelta(minutes=4)) == 0
        assert services.reminders_send_due(now=now + datetime.timedelta(minutes=6)) == 1
    assert ReminderLog.objects.filter(incident=incident).count() == 2


def test_a_reminder_with_no_destination_is_recorded_as_not_delivered(
    incident_factory, commander, viewer, django_capture_on_commit_callbacks
):
    """No reminder channel and a Communications Lead without an e-mail address: the timeline
    says the reminder reached nobody (not "reminded X") and the panel names what to set up."""
    lead = UserFactory(username="no-mail-lead", role="responder", email="")
    incident = incident_factory(severity="SEV3")
    incident_services.role_assign(
        incident_id=incident.pk, role="communications_lead", user=lead, actor=commander
    )
    _age(incident, 300)
    with django_capture_on_commit_callbacks(execute=False):
        assert services.reminders_send_due() == 1
    assert not Delivery.objects.filter(kind=DeliveryKind.REMINDER).exists()
    event = incident.timeline.filter(kind=EventKind.COMMS, data__reminder=True).get()
    assert event.message.startswith("Reminder not delivered: no destination.")
    assert "reminded" not in event.message
    assert "no-mail-lead has no e-mail address" in event.message
    assert event.data["not_delivered"] == "no destination"
    assert event.data["meant_for"] == "no-mail-lead"
    assert event.data["destinations"] == []

    client = Client()
    client.force_login(viewer)
    html = client.get(f"/comms/incidents/{incident.pk}/panel/").content.decode()
    assert "data-delivery-gap" in html
    assert "Next-update reminders reach nobody" in html
    assert "Admin → Communications → Channels with “receives reminders”" in html
    assert "no-mail-lead has no e-mail address: set it in Admin → Users" in html

    # Once the lead has an address, reminders reach them and the notice goes away.
    lead.email = "lead@example.com"
    lead.save()
    html = client.get(f"/comms/incidents/{incident.pk}/panel/").content.decode()
    assert "Next-update reminders reach nobody" not in html


def test_an_email_reminder_channel_without_recipients_is_named(incident_factory):
    Channel.objects.create(
        name="ops-mail", kind="email", audience="internal", receives_reminders=True, recipients=[]
    )
    incident = incident_factory(severity="SEV3")
    gap = selectors.reminder_gap(incident)
    assert "e-mail channel “ops-mail” has no recipients" in gap
    assert "no Communications Lead or Incident Commander is assigned" in gap
