"""iCalendar (RFC 5545 / iTIP RFC 5546) invites for post-incident reviews.

A review keeps one UID for its whole life; each change raises SEQUENCE, so calendar clients
update the meeting they already have. A cancellation is METHOD:CANCEL with the same UID and a
higher SEQUENCE.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone
from icalendar import Calendar, Event, vCalAddress, vText

from incidents.names import display_name

PRODID = "-//Quell//Post-incident review//EN"


def _address(email: str, name: str = "", **params) -> vCalAddress:
    addr = vCalAddress(f"mailto:{email}")
    if name:
        addr.params["CN"] = vText(name)
    for key, value in params.items():
        addr.params[key] = vText(value)
    return addr


def review_calendar(
    review, *, method: str = "REQUEST", now: datetime.datetime | None = None
) -> bytes:
    """The review as an iCalendar document with the given iTIP method (REQUEST or CANCEL)."""
    if method not in ("REQUEST", "CANCEL"):
        raise ValueError("method must be REQUEST or CANCEL")
    postmortem = review.postmortem
    incident = postmortem.incident
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", method)

    event = Event()
    event.add("uid", review.uid)
    event.add("sequence", review.sequence)
    event.add("dtstamp", (now or timezone.now()).astimezone(datetime.UTC))
    event.add("dtstart", review.starts_at.astimezone(datetime.UTC))
    event.add("dtend", review.ends_at.astimezone(datetime.UTC))
    event.add("summary", f"Post-incident review: #{incident.pk} {incident.title}")
    url = f"{settings.QUELL_BASE_URL.rstrip('/')}/postmortems/{postmortem.pk}/"
    lines = [
        f"Post-incident review of incident #{incident.pk} ({incident.severity}): {incident.title}",
        f"Postmortem: {url}",
    ]
    if postmortem.review_due_at:
        due = timezone.localtime(postmortem.review_due_at)
        lines.append(f"Review due by {due:%Y-%m-%d %H:%M %Z} (policy for {incident.severity}).")
    if review.agenda:
        lines += ["", review.agenda]
    if method == "CANCEL" and review.cancelled_reason:
        lines += ["", f"Cancelled: {review.cancelled_reason}"]
    event.add("description", "\n".join(lines))
    event.add("url", url)
    if review.location:
        event.add("location", review.location)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "OPAQUE")
    organizer_email = settings.QUELL_POSTMORTEM_FROM_EMAIL
    organizer_name = "Quell"
    if review.organizer_id and review.organizer.email:
        organizer_name = display_name(review.organizer)
    event.add("organizer", _address(organizer_email, organizer_name))
    for attendee in review.attendees:
        event.add(
            "attendee",
            _address(
                attendee["email"],
                attendee.get("name", ""),
                ROLE="REQ-PARTICIPANT",
                PARTSTAT="NEEDS-ACTION",
                RSVP="TRUE",
                CUTYPE="INDIVIDUAL",
            ),
            encode=0,
        )
    cal.add_component(event)
    return cal.to_ical()
