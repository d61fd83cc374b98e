"""Review scheduling: invitees, iCalendar content parsed back, reschedule/cancel, reminders,
deadline flags, and a real SMTP exchange."""

import datetime
import email
import socket

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from incidents.models import EventKind, TimelineEvent
from postmortems import services, tasks
from postmortems.ics import review_calendar
from postmortems.models import Review, ReviewStatus


def _calendar_of(message) -> Calendar:
    for content, mimetype in message.alternatives:
        if mimetype.startswith("text/calendar"):
            return Calendar.from_ical(content)
    raise AssertionError("no text/calendar part")


def _event(cal):
    return next(c for c in cal.walk() if c.name == "VEVENT")


def _future(days=2, hour=14):
    local = timezone.localtime() + datetime.timedelta(days=days)
    return local.replace(hour=hour, minute=0, second=0, microsecond=0)


@pytest.fixture
def stakeholders(settings):
    settings.QUELL_STAKEHOLDERS = {
        "SEV1": [],
        "SEV2": ["VP Engineering <vp@example.com>", "support-lead@example.com"],
        "SEV3": [],
        "SEV4": [],
    }


def test_invitees_are_response_team_specialists_and_stakeholders(
    postmortem, specialist, stakeholders, commander
):
    invitees = {a["email"]: a for a in services.review_invitees(postmortem)}
    assert invitees["commander@example.com"]["reason"] == "response team"
    assert invitees["tech-lead@example.com"]["reason"] == "response team"
    assert invitees["dba@example.com"]["reason"] == "database specialist"
    assert invitees["dba@example.com"]["name"] == "Dana Ba"
    assert invitees["vp@example.com"] == {
        "email": "vp@example.com",
        "name": "VP Engineering",
        "reason": "stakeholder",
    }
    assert "support-lead@example.com" in invitees


def test_schedule_sends_an_ics_invite_that_parses_back(
    postmortem, specialist, stakeholders, commander, django_capture_on_commit_callbacks
):
    starts = _future()
    with django_capture_on_commit_callbacks(execute=True):
        review = services.review_schedule(
            postmortem_id=postmortem.pk, actor=commander, starts_at=starts, agenda="Walk through"
        )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.subject.startswith("Invitation: post-incident review")
    assert set(message.to) >= {"commander@example.com", "dba@example.com", "vp@example.com"}
    assert message.attachments[0][0] == "invite.ics"
    cal = _calendar_of(message)
    assert str(cal["METHOD"]) == "REQUEST"
    event = _event(cal)
    assert str(event["UID"]) == review.uid
    assert int(event["SEQUENCE"]) == 0
    assert event.decoded("DTSTART") == starts
    assert event.decoded("DTEND") == starts + datetime.timedelta(minutes=60)
    assert "Post-incident review" in str(event["SUMMARY"])
    attendees = {str(a).removeprefix("mailto:") for a in event["ATTENDEE"]}
    assert {"commander@example.com", "dba@example.com", "vp@example.com"} <= attendees
    assert str(event["ORGANIZER"]).startswith("mailto:")
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident,
        kind=EventKind.POSTMORTEM,
        message__startswith="Post-incident review scheduled",
    ).exists()


def test_reschedule_keeps_uid_and_raises_sequence_cancel_sends_cancel(
    postmortem, commander, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        review = services.review_schedule(
            postmortem_id=postmortem.pk, actor=commander, starts_at=_future(2)
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.review_reschedule(review_id=review.pk, actor=commander, starts_at=_future(3))
    with django_capture_on_commit_callbacks(execute=True):
        services.review_cancel(review_id=review.pk, actor=commander, reason="Merged with #9")
    invite, update, cancel = (_calendar_of(m) for m in mail.outbox)
    assert mail.outbox[1].subject.startswith("Updated:")
    assert mail.outbox[2].subject.startswith("Cancelled:")
    uids = {str(_event(c)["UID"]) for c in (invite, update, cancel)}
    assert uids == {review.uid}
    assert [int(_event(c)["SEQUENCE"]) for c in (invite, update, cancel)] == [0, 1, 2]
    assert _event(update).decoded("DTSTART") == _future(3)
    assert str(cancel["METHOD"]) == "CANCEL"
    assert str(_event(cancel)["STATUS"]) == "CANCELLED"
    review.refresh_from_db()
    assert review.status == ReviewStatus.CANCELLED
    # A new review can be scheduled after a cancellation, with a new UID.
    again = services.review_schedule(postmortem_id=postmortem.pk, actor=commander)
    assert again.uid != review.uid


def test_schedule_defaults_to_the_proposed_slot_and_refuses_a_second_one(postmortem, commander):
    proposed = services.review_proposed_slot(postmortem)
    review = services.review_schedule(postmortem_id=postmortem.pk, actor=commander)
    assert review.starts_at == proposed
    assert review.starts_at <= postmortem.review_due_at
    with pytest.raises(services.PostmortemError, match="already scheduled"):
        services.review_schedule(postmortem_id=postmortem.pk, actor=commander)


def test_schedule_refuses_the_past_and_bad_extra_addresses(postmortem, commander):
    with pytest.raises(services.PostmortemError, match="future") as caught:
        services.review_schedule(
            postmortem_id=postmortem.pk,
            actor=commander,
            starts_at=timezone.now() - datetime.timedelta(hours=1),
        )
    assert caught.value.field == "starts_at"
    with pytest.raises(services.PostmortemError, match="not an e-mail"):
        services.review_schedule(
            postmortem_id=postmortem.pk, actor=commander, extra_attendees=["not an address"]
        )
    assert not Review.objects.exists()


def test_reminder_goes_out_once_within_the_window(
    postmortem, commander, django_capture_on_commit_callbacks
):
    review = services.review_schedule(
        postmortem_id=postmortem.pk,
        actor=commander,
        starts_at=timezone.now() + datetime.timedelta(hours=3),
    )
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.send_review_reminders() == 1
        assert tasks.send_review_reminders() == 0
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.startswith("Reminder:")
    review.refresh_from_db()
    assert review.reminder_sent_at is not None


def test_missed_deadline_is_flagged_once(postmortem, commander):
    Review.objects.all().delete()
    postmortem.review_due_at = timezone.now() - datetime.timedelta(hours=1)
    postmortem.save(update_fields=["review_due_at"])
    assert tasks.flag_missed_review_deadlines() == 1
    assert tasks.flag_missed_review_deadlines() == 0
    postmortem.refresh_from_db()
    assert postmortem.review_deadline_missed_at is not None
    assert (
        TimelineEvent.objects.filter(
            incident=postmortem.incident, message__contains="deadline passed"
        ).count()
        == 1
    )


def test_ics_for_cancel_reflects_reason(postmortem, commander):
    review = services.review_schedule(postmortem_id=postmortem.pk, actor=commander)
    review.cancelled_reason = "No longer needed"
    cal = Calendar.from_ical(review_calendar(review, method="CANCEL"))
    assert "No longer needed" in str(_event(cal)["DESCRIPTION"])
    with pytest.raises(ValueError):
        review_calendar(review, method="PUBLISH")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_invite_reaches_a_real_smtp_server(
    postmortem, commander, settings, django_capture_on_commit_callbacks
):
    from aiosmtpd.controller import Controller

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    port = _free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        with django_capture_on_commit_callbacks(execute=True):
            review = services.review_schedule(postmortem_id=postmortem.pk, actor=commander)
    finally:
        controller.stop()
    assert len(received) == 1
    envelope = received[0]
    assert "commander@example.com" in envelope.rcpt_tos
    parsed = email.message_from_bytes(envelope.content)
    parts = {p.get_content_type(): p for p in parsed.walk()}
    assert parts["text/calendar"].get_param("method") == "REQUEST"
    assert "application/ics" in parts
    cal = Calendar.from_ical(parts["text/calendar"].get_payload(decode=True))
    assert str(_event(cal)["UID"]) == review.uid


def test_a_review_held_before_the_deadline_is_not_flagged(postmortem, commander):
    review = services.review_schedule(postmortem_id=postmortem.pk, actor=commander)
    with pytest.raises(services.PostmortemError, match="not started"):
        services.review_mark_held(review_id=review.pk, actor=commander)
    # Time passes: the meeting took place an hour ago, the deadline has passed since.
    Review.objects.filter(pk=review.pk).update(
        starts_at=timezone.now() - datetime.timedelta(hours=1)
    )
    postmortem.review_due_at = timezone.now() - datetime.timedelta(minutes=1)
    postmortem.save(update_fields=["review_due_at"])
    held = services.review_mark_held(review_id=review.pk, actor=commander)
    assert held.status == ReviewStatus.HELD
    assert not services.postmortem_flag_missed_deadline(postmortem_id=postmortem.pk)


def test_a_review_only_scheduled_after_the_deadline_is_flagged(postmortem, commander):
    services.review_schedule(
        postmortem_id=postmortem.pk,
        actor=commander,
        starts_at=postmortem.review_due_at + datetime.timedelta(days=3),
    )
    later = postmortem.review_due_at + datetime.timedelta(hours=1)
    assert services.postmortem_flag_missed_deadline(postmortem_id=postmortem.pk, now=later)


def test_invite_subject_survives_a_title_with_line_breaks(
    postmortem, commander, django_capture_on_commit_callbacks
):
    from incidents.models import Incident

    Incident.objects.filter(pk=postmortem.incident_id).update(title="Orders\r\nBcc: evil@x")
    with django_capture_on_commit_callbacks(execute=True):
        services.review_schedule(postmortem_id=postmortem.pk, actor=commander)
    assert len(mail.outbox) == 1
    assert "\n" not in mail.outbox[0].subject
    assert mail.outbox[0].bcc == []


def test_an_attendee_without_an_email_is_named_not_silently_skipped(
    postmortem, specialist, commander, responder, django_capture_on_commit_callbacks
):
    """The specialist has no e-mail address: the others get the invite, and the postmortem page
    and the timeline name who was left out and where to set the address."""
    specialist.email = ""
    specialist.save()
    assert [p["name"] for p in services.review_left_out(postmortem)] == ["Dana Ba"]
    client = Client()
    client.force_login(responder)
    url = reverse("postmortems:detail", args=[postmortem.pk])
    before = client.get(url).content.decode()
    assert "Dana Ba (database specialist) has no e-mail address and will not be invited" in before

    with django_capture_on_commit_callbacks(execute=True):
        review = services.review_schedule(
            postmortem_id=postmortem.pk, actor=commander, starts_at=_future()
        )
    assert len(mail.outbox) == 1
    assert "dba@example.com" not in mail.outbox[0].to
    assert "commander@example.com" in mail.outbox[0].to
    assert review.left_out == [
        {
            "name": "Dana Ba",
            "username": "dba",
            "reason": "database specialist",
            "why": "no e-mail address",
            "fix": "set it in Admin → Users",
        }
    ]
    event = TimelineEvent.objects.get(
        incident=postmortem.incident, data__action="review_invitation_not_delivered"
    )
    assert event.message == (
        "Review invitation not delivered: no destination for Dana Ba (database specialist): "
        "no e-mail address; set it in Admin → Users"
    )
    assert event.data["not_delivered"] == "no destination"
    html = client.get(url).content.decode()
    assert (
        "Dana Ba (database specialist) has no e-mail address: invitation not sent; "
        "set it in Admin → Users." in html
    )
    assert "data-left-out" in html

    # The reminder misses them too, and says so.
    soon = review.starts_at - datetime.timedelta(hours=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.review_send_reminder(review_id=review.pk, now=soon)
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, data__action="review_reminder_not_delivered"
    ).exists()

    # With an address set, the reschedule invites them and the notice goes away.
    specialist.email = "dba@example.com"
    specialist.save()
    with django_capture_on_commit_callbacks(execute=True):
        review = services.review_reschedule(
            review_id=review.pk, actor=commander, starts_at=_future(days=3)
        )
    assert review.left_out == []
    assert "dba@example.com" in mail.outbox[-1].to
    assert "data-left-out" not in client.get(url).content.decode()


def test_nobody_to_invite_names_who_has_no_address(settings, postmortem, commander):
    settings.QUELL_STAKEHOLDERS = {}
    get_user_model().objects.filter(username__in=["commander", "tech-lead"]).update(email="")
    with pytest.raises(services.PostmortemError) as exc:
        services.review_schedule(postmortem_id=postmortem.pk, actor=commander, starts_at=_future())
    assert "Without an address:" in str(exc.value) and "tech-lead" in str(exc.value)
    assert "Admin → Users" in str(exc.value)


def test_a_review_where_everyone_has_an_address_records_no_gap(
    postmortem, commander, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        review = services.review_schedule(
            postmortem_id=postmortem.pk, actor=commander, starts_at=_future()
        )
    assert review.left_out == []
    assert not TimelineEvent.objects.filter(data__has_key="not_delivered").exists()
