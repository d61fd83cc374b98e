"""Next-update reminders to the Communications Lead (or the Commander)."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from incidents.models import OPEN_STATUSES, Incident

from .. import events, rendering, selectors, status_cache
from ..models import (
    ChannelKind,
    Delivery,
    DeliveryKind,
    ReminderLog,
)
from .common import (
    _channel_delivery,
    _enqueue_on_commit,
)

logger = logging.getLogger(__name__)


def _reminder_text(incident: Incident, due: selectors.UpdateDue, owner) -> tuple[str, str]:
    """Subject and body of a reminder."""
    who = f"@{owner.get_username()}" if owner is not None else "Communications Lead"
    base = settings.QUELL_BASE_URL.rstrip("/")
    subject = f"[{incident.severity}] Update due: {incident.title}"
    body = (
        f"{who}: the {due.reason} for incident #{incident.pk} ({incident.title}, "
        f"{incident.severity}, {incident.get_status_display()}) was due at "
        f"{rendering.fmt_time(due.due_at)}.\n"
        f"Post an update: {base}/incidents/{incident.pk}/\n"
        f"Incident channel: {incident.channel_name}"
    )
    return subject, body


def _reminder_slot(due: selectors.UpdateDue, now: datetime.datetime) -> datetime.datetime:
    """The due time, then one slot per QUELL_COMMS_REMINDER_REPEAT_MINUTES while still late:
    one reminder per slot, so a forgotten update is asked for again, not once only."""
    repeat = datetime.timedelta(minutes=max(int(settings.QUELL_COMMS_REMINDER_REPEAT_MINUTES), 1))
    late = max(now - due.due_at, datetime.timedelta(0))
    return due.due_at + repeat * (late // repeat)


def reminders_send_due(*, now: datetime.datetime | None = None) -> int:
    """Remind the Communications Lead (or Commander) of every overdue update, through the
    reminder channels and by e-mail: at the due time, then again every
    QUELL_COMMS_REMINDER_REPEAT_MINUTES until an update is published. Returns how many."""
    now = now or timezone.now()
    sent = 0
    for incident, due in selectors.overdue_incidents(now=now):
        with transaction.atomic():
            locked = Incident.objects.select_for_update().get(pk=incident.pk)
            if locked.status not in OPEN_STATUSES:
                continue
            owner = selectors.comms_owner(locked)
            try:
                with transaction.atomic():
                    ReminderLog.objects.create(
                        incident=locked, due_at=_reminder_slot(due, now), reminded_user=owner
                    )
            except IntegrityError:
                continue  # already reminded in this slot
            subject, body = _reminder_text(locked, due, owner)
            rows = []
            for channel in selectors.reminder_channels_for(severity=locked.severity):
                row = _channel_delivery(
                    channel,
                    kind=DeliveryKind.REMINDER,
                    incident=locked,
                    subject=subject,
                    body=body,
                    extra={
                        "payload": {
                            "event": "reminder",
                            "incident": {"id": locked.pk, "severity": locked.severity},
                            "due": due.as_dict(),
                            "text": body,
                        }
                    }
                    if channel.kind == ChannelKind.WEBHOOK
                    else {},
                )
                if row is not None:
                    rows.append(row)
            if owner is not None and owner.email:
                rows.append(
                    Delivery(
                        kind=DeliveryKind.REMINDER,
                        transport=ChannelKind.EMAIL,
                        incident=locked,
                        recipients=[owner.email],
                        destination=f"{owner.get_username()} <{owner.email}>",
                        subject=subject,
                        body=body,
                        max_attempts=settings.QUELL_COMMS_MAX_ATTEMPTS,
                    )
                )
            rows = Delivery.objects.bulk_create(rows)
            if rows:
                events.reminder_sent_event(
                    locked, due=due, owner=owner, destinations=[r.destination for r in rows]
                )
            else:
                events.reminder_undelivered_event(locked, due=due, owner=owner, subject=subject)
            _enqueue_on_commit([r.pk for r in rows])
            sent += 1
    if sent:
        status_cache.invalidate()  # the page's "update overdue" notice changed
    return sent
