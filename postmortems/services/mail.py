"""Postmortem mail: built here, sent by Celery tasks enqueued after commit.

A rolled-back change never mails anybody, and a slow or failing mail server neither holds a row
lock nor fails the user's request: the task retries with backoff.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import EmailMultiAlternatives

from incidents.dispatch import dispatch_on_commit
from incidents.mail import mail_subject

logger = logging.getLogger(__name__)


def build_message(
    *,
    subject: str,
    body: str,
    to: list[str],
    ics: bytes | None = None,
    ics_method: str = "REQUEST",
) -> EmailMultiAlternatives:
    """A plain-text message, with an iCalendar part calendar clients act on when `ics` is set."""
    message = EmailMultiAlternatives(
        subject=mail_subject(subject),
        body=body,
        from_email=settings.QUELL_POSTMORTEM_FROM_EMAIL,
        to=to,
    )
    if ics is not None:
        # The text/calendar alternative is what mail clients turn into a meeting request; the
        # attachment is for clients that only offer files.
        message.attach_alternative(
            ics.decode(), f"text/calendar; method={ics_method}; charset=UTF-8"
        )
        message.attach("invite.ics", ics, "application/ics")
    return message


def enqueue_review_mail(*, review_id: int, sequence: int, kind: str) -> None:
    """After commit, queue the invite/update/cancel mail for this version of the review."""
    from postmortems.tasks import send_review_mail

    dispatch_on_commit(send_review_mail, review_id=review_id, sequence=sequence, kind=kind)


def enqueue_action_item_reminder(*, owner_id: int, action_item_ids: list[int]) -> None:
    """After commit, queue one overdue reminder to an owner listing their items."""
    from postmortems.tasks import send_action_item_reminder

    dispatch_on_commit(
        send_action_item_reminder, owner_id=owner_id, action_item_ids=action_item_ids
    )
