import json
import time

import pytest
from django.core import mail
from django.test import Client

from comms import selectors, services, transports
from comms.models import (
    Channel,
    Delivery,
    DeliveryState,
    MessageTemplate,
    StatusUpdate,
    UndeliveredInitialNotification,
)
from comms.tasks import delivery_send
from incidents.models import EventKind

pytestmark = pytest.mark.django_db


def _publish_internal(incident, actor, **kwargs):
    template = MessageTemplate.objects.get(key="internal-initial")
    return services.update_create_and_publish(
        incident_id=incident.pk, template_id=template.pk, actor=actor, **kwargs
    )


def test_publish_stores_text_as_sent_and_records_timeline(
    incident_factory, responder, slack_channel, django_capture_on_commit_callbacks
):
    incident = incident_factory(severity="SEV2")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        update = _publish_internal(incident, responder)
    assert update.state == "published" and update.published_at is not None
    delivery = Delivery.objects.get(status_update=update)
    assert delivery.state == DeliveryState.PENDING and delivery.destination == "ops-slack"
    # Sending is enqueued after commit, never done inside the publish.
    assert callbacks
    event = incident.timeline.filter(kind=EventKind.COMMS).get()
    assert event.data["update_id"] == update.pk
    assert event.data["destinations"] == ["ops-slack"]
    sent_body = update.body
    # Editing the template later leaves the sent update unchanged.
    template = MessageTemplate.objects.get(key="internal-initial")
    template.body = "Something else entirely"
    template.save()
    update.refresh_from_db()
    assert update.body == sent_body


def test_published_update_cannot_be_edited(incident_factory, responder):
    incident = incident_factory()
    update = _publish_internal(incident, responder)
    with pytest.raises(services.CommsError, match="kept as sent"):
        services.update_edit(update_id=update.pk, actor=responder, body="rewritten")


def test_external_update_with_unfilled_marker_is_refused(incident_factory, commander):
    incident = incident_factory(severity="SEV1")
    template = MessageTemplate.objects.get(key="external-identified")
    draft = services.update_create(
        incident_id=incident.pk, template_id=template.pk, actor=commander
    )
    assert "[TO FILL: estimated time to restore service]" in draft.body
    with pytest.raises(services.UnfilledMarkers) as exc:
        services.update_publish(update_id=draft.pk, actor=commander)
    assert "estimated time to restore service" in str(exc.value)
    draft.refresh_from_db()
    assert draft.state == "draft"
    services.update_edit(
        update_id=draft.pk,
        actor=commander,
        body=draft.body.replace("[TO FILL: estimated time to restore service]", "30 minutes"),
    )
    published = services.update_publish(update_id=draft.pk, actor=commander)
    assert published.is_published


def test_slack_delivery_posts_text_with_mentions(
    incident_factory, responder, slack_channel, receiver, django_capture_on_commit_callbacks
):
    incident = incident_factory()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)
    assert delivery_send(delivery.pk) == DeliveryState.DELIVERED
    body = receiver.json_bodies()[0]
    assert body["text"].startswith("<!channel> INCIDENT DECLARED")
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.response_code == 200
    assert delivery.delivered_at is not None
    # A duplicate task message is a no-op.
    assert delivery_send(delivery.pk) == DeliveryState.DELIVERED
    assert len(receiver.requests) == 1


def test_generic_webhook_is_signed_and_verifiable(
    incident_factory, responder, webhook_channel, receiver, django_capture_on_commit_callbacks
):
    incident = incident_factory()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)
    delivery_send(delivery.pk)
    req = receiver.requests[0]
    headers = {k.lower(): v for k, v in req["headers"].items()}
    sig = headers["x-quell-signature"]
    ts = headers["x-quell-timestamp"]
    assert sig.startswith("sha256=")
    assert transports.verify_signature("s3cret-key", body=req["body"], timestamp=ts, signature=sig)
    # Wrong key, tampered body, or an old timestamp (replay) do not verify.
    assert not transports.verify_signature("other", body=req["body"], timestamp=ts, signature=sig)
    assert not transports.verify_signature(
        "s3cret-key", body=req["body"] + b" ", timestamp=ts, signature=sig
    )
    assert not transports.verify_signature(
        "s3cret-key", body=req["body"], timestamp=ts, signature=sig, now=int(ts) + 3600
    )
    payload = json.loads(req["body"])
    assert payload["event"] == "status_update.published"
    assert payload["update"]["id"] == update.pk
    assert payload["delivery_id"] == delivery.pk
    assert headers["x-quell-delivery"] == str(delivery.pk)


def test_receiver_failing_twice_then_succeeding_is_retried_with_backoff(
    incident_factory, responder, slack_channel, receiver, django_capture_on_commit_callbacks
):
    receiver.script = [503, 500]
    incident = incident_factory()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)

    first = services.delivery_attempt(delivery_id=delivery.pk)
    assert first.state == DeliveryState.RETRYING and first.retry_in == 30
    delivery.refresh_from_db()
    assert delivery.response_code == 503 and "503" in delivery.error
    assert delivery.response_excerpt == "receiver says no"
    # Not due yet: an early duplicate message does nothing.
    assert services.delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.RETRYING
    assert len(receiver.requests) == 1

    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    second = services.delivery_attempt(delivery_id=delivery.pk)
    assert second.state == DeliveryState.RETRYING and second.retry_in == 60  # doubled
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    third = services.delivery_attempt(delivery_id=delivery.pk)
    assert third.state == DeliveryState.DELIVERED
    delivery.refresh_from_db()
    assert delivery.attempts == 3 and delivery.error == "" and delivery.response_code == 200
    assert len(receiver.requests) == 3


def test_retries_chain_through_celery_until_delivered(
    settings,
    incident_factory,
    responder,
    slack_channel,
    receiver,
    django_capture_on_commit_callbacks,
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # Eager mode runs a scheduled retry at once, so make it due at once.
    settings.QUELL_COMMS_RETRY_BASE_SECONDS = 0
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        receiver.script = [502, 502]
        incident = incident_factory()
        with django_capture_on_commit_callbacks(execute=True):
            update = _publish_internal(incident, responder)
    finally:
        app.conf.task_always_eager = False
    delivery = Delivery.objects.get(status_update=update)
    # Eager mode runs the scheduled retries at once; the row still shows each attempt.
    assert delivery.state == DeliveryState.DELIVERED
    assert delivery.attempts == 3


def test_hanging_receiver_times_out_quickly_and_is_retried(
    incident_factory, responder, slack_channel, receiver, django_capture_on_commit_callbacks
):
    receiver.script = [("hang", 3)]
    incident = incident_factory()
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    # Publishing does not wait for any receiver.
    assert time.monotonic() - started < 1.0
    delivery = Delivery.objects.get(status_update=update)
    started = time.monotonic()
    outcome = services.delivery_attempt(delivery_id=delivery.pk)
    assert time.monotonic() - started < 2.0
    assert outcome.state == DeliveryState.RETRYING
    delivery.refresh_from_db()
    assert "Timed out" in delivery.error


def test_permanent_client_error_fails_at_once_and_shows_on_the_incident(
    incident_factory, responder, slack_channel, receiver, django_capture_on_commit_callbacks
):
    receiver.script = [404]
    incident = incident_factory()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)
    assert services.delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.FAILED
    failure = incident.timeline.filter(kind=EventKind.COMMS, data__state="failed").get()
    assert "ops-slack" in failure.message and "404" in failure.message


def test_delivery_fails_after_max_attempts_and_can_be_retried(
    settings,
    incident_factory,
    responder,
    slack_channel,
    receiver,
    django_capture_on_commit_callbacks,
):
    settings.QUELL_COMMS_MAX_ATTEMPTS = 2
    receiver.script = [500, 500]
    incident = incident_factory()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)
    services.delivery_attempt(delivery_id=delivery.pk)
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=None)
    assert services.delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.FAILED
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.delivery_retry(delivery_id=delivery.pk, actor=responder)
    assert callbacks  # re-enqueued after commit
    assert services.delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.DELIVERED
    with pytest.raises(services.CommsError, match="Only failed"):
        services.delivery_retry(delivery_id=delivery.pk, actor=responder)


def test_email_channel_reaches_smtp_with_stakeholders_for_the_severity(
    settings, smtp_server, incident_factory, responder, django_capture_on_commit_callbacks
):
    settings.QUELL_STAKEHOLDERS = {"SEV1": ["cto@example.com", "vp@example.com"], "SEV3": []}
    Channel.objects.create(
        name="leads-mail",
        kind="email",
        audience="internal",
        recipients=["oncall@example.com"],
        include_stakeholders=True,
    )
    incident = incident_factory(severity="SEV1")
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)
    assert delivery.recipients == ["cto@example.com", "oncall@example.com", "vp@example.com"]
    assert delivery_send(delivery.pk) == DeliveryState.DELIVERED
    msg = smtp_server.messages[0]
    assert set(msg["to"]) >= {"cto@example.com", "oncall@example.com", "vp@example.com"}
    assert "INCIDENT DECLARED" in msg["data"]


def test_routing_by_audience_and_severity(incident_factory, responder, receiver):
    Channel.objects.create(
        name="sev12-only",
        kind="slack",
        audience="internal",
        url=receiver.url,
        severities=["SEV1", "SEV2"],
    )
    Channel.objects.create(name="public-hook", kind="slack", audience="external", url=receiver.url)
    Channel.objects.create(
        name="disabled", kind="slack", audience="all", url=receiver.url, enabled=False
    )
    sev3 = incident_factory(severity="SEV3", title="Minor slowness")
    sev1 = incident_factory(severity="SEV1", title="Outage")
    u3 = _publish_internal(sev3, responder)
    u1 = _publish_internal(sev1, responder)
    assert not Delivery.objects.filter(status_update=u3).exists()
    assert list(
        Delivery.objects.filter(status_update=u1).values_list("destination", flat=True)
    ) == ["sev12-only"]


def test_initial_notification_is_sent_when_an_incident_is_declared(
    settings, slack_channel, responder, django_capture_on_commit_callbacks
):
    from incidents import services as incident_services

    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            incident = incident_services.incident_declare(
                title="Primary unreachable", severity="SEV1", actor=responder
            )
    finally:
        app.conf.task_always_eager = False
    update = StatusUpdate.objects.get(incident=incident)
    assert update.audience == "internal" and update.published_by_label == "quell"
    assert incident.channel_name in update.body
    assert Delivery.objects.get(status_update=update).state == DeliveryState.DELIVERED


def test_initial_notification_can_be_turned_off(settings, slack_channel, incident_factory):
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    incident = incident_factory()
    assert services.initial_notification_send(incident_id=incident.pk) is None
    assert not StatusUpdate.objects.exists()


def test_channel_secrets_are_validated(admin_user):
    with pytest.raises(services.CommsError) as exc:
        services.channel_save(
            actor=admin_user, name="x", kind="webhook", url="http://127.0.0.1:1/h"
        )
    assert exc.value.field == "signing_secret"
    with pytest.raises(services.CommsError) as exc:
        services.channel_save(actor=admin_user, name="m", kind="email", recipients=["nope"])
    assert exc.value.field == "recipients"


def test_locmem_outbox_unused_when_no_email_channels(incident_factory, responder):
    _publish_internal(incident_factory(), responder)
    assert mail.outbox == []


def test_a_delivery_claimed_by_another_worker_is_not_sent_twice(
    incident_factory, responder, slack_channel, receiver, django_capture_on_commit_callbacks
):
    import datetime

    from django.utils import timezone

    incident = incident_factory()
    with django_capture_on_commit_callbacks(execute=False):
        update = _publish_internal(incident, responder)
    delivery = Delivery.objects.get(status_update=update)
    Delivery.objects.filter(pk=delivery.pk).update(
        state=DeliveryState.SENDING, claimed_at=timezone.now(), attempts=1
    )
    # A duplicate task message while another worker is sending: nothing happens.
    assert services.delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.SENDING
    assert receiver.requests == []
    # That worker died mid-send long ago: the next message takes over.
    Delivery.objects.filter(pk=delivery.pk).update(
        claimed_at=timezone.now() - datetime.timedelta(minutes=10)
    )
    assert services.delivery_attempt(delivery_id=delivery.pk).state == DeliveryState.DELIVERED
    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 2


def test_lost_tasks_are_resumed(incident_factory, responder, slack_channel, settings):
    import datetime

    from django.utils import timezone

    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    incident = incident_factory()
    update = _publish_internal(incident, responder)  # on_commit never fires here: task "lost"
    delivery = Delivery.objects.get(status_update=update)
    assert delivery.state == DeliveryState.PENDING
    app.conf.task_always_eager = True
    try:
        later = timezone.now() + datetime.timedelta(minutes=5)
        assert services.deliveries_resume(now=later) == 1
    finally:
        app.conf.task_always_eager = False
    delivery.refresh_from_db()
    assert delivery.state == DeliveryState.DELIVERED


def test_an_internal_update_with_no_channel_is_recorded_as_not_delivered(
    incident_factory, commander, viewer
):
    incident = incident_factory(severity="SEV2")
    template = MessageTemplate.objects.get(key="internal-update")
    services.update_create_and_publish(
        incident_id=incident.pk, template_id=template.pk, actor=commander
    )
    event = incident.timeline.filter(data__not_delivered="no destination").get()
    assert "Internal update published" in event.message
    assert "Not delivered: no destination" in event.message
    assert "no channel receives internal SEV2 updates" in event.message
    client = Client()
    client.force_login(viewer)
    html = client.get(f"/comms/incidents/{incident.pk}/panel/").content.decode()
    assert "Internal updates reach no channel" in html


def test_an_internal_update_with_a_channel_is_not_flagged(
    incident_factory, commander, slack_channel, django_capture_on_commit_callbacks
):
    incident = incident_factory(severity="SEV2")
    template = MessageTemplate.objects.get(key="internal-update")
    with django_capture_on_commit_callbacks(execute=False):
        services.update_create_and_publish(
            incident_id=incident.pk, template_id=template.pk, actor=commander
        )
    assert not incident.timeline.filter(data__has_key="not_delivered").exists()
    assert selectors.internal_channel_gap(incident) is None
    assert not any(g.startswith("Internal") for g in selectors.delivery_gaps(incident))


def test_an_initial_notification_with_no_channel_is_recorded_once(incident_factory):
    incident = incident_factory(severity="SEV1")
    assert services.initial_notification_send(incident_id=incident.pk) is None
    assert services.initial_notification_send(incident_id=incident.pk) is None
    event = incident.timeline.filter(data__initial_notification="not delivered").get()
    assert event.message.startswith("Initial notification not delivered: no destination.")
    # Comms remembers it in its own table, not by searching the timeline's data.
    miss = UndeliveredInitialNotification.objects.get(incident=incident)
    assert "Admin → Communications → Channels" in miss.reason
    assert "Admin → Communications → Channels" in event.message
    assert not StatusUpdate.objects.exists()
