"""Celery tasks: thin wrappers taking ids. Periodic sweeps find the ids and call services;
mail tasks build the message from the current rows and retry only on transient mail errors."""

from __future__ import annotations

import logging
import smtplib

from celery import shared_task
from django.contrib.auth import get_user_model
from django.utils import timezone

from . import services
from .models import ActionItem, Postmortem, PostmortemStatus, Review, ReviewStatus
from .notifications import action_item_reminder_message, review_message
from .services.verification import items_awaiting_verification, items_holding_due

logger = logging.getLogger(__name__)

TRANSIENT_MAIL_ERRORS = (smtplib.SMTPException, ConnectionError, TimeoutError, OSError)


@shared_task(
    name="postmortems.send_review_mail",
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_MAIL_ERRORS,
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
)
def send_review_mail(self, review_id: int, sequence: int, kind: str) -> None:
    """Mail a review's invite, update, cancellation or reminder to its attendees."""
    review = (
        Review.objects.select_related("postmortem", "postmortem__incident", "organizer")
        .filter(pk=review_id)
        .first()
    )
    if review is None:
        return
    if review.sequence != sequence:
        # Superseded: a later update (with its own mail) replaced this version.
        logger.info("Review %s mail %s for sequence %s superseded", review_id, kind, sequence)
        return
    message = review_message(review, kind=kind)
    if message is not None:
        message.send()


@shared_task(
    name="postmortems.send_action_item_reminder",
    acks_late=True,
    ignore_result=True,
    autoretry_for=TRANSIENT_MAIL_ERRORS,
    retry_backoff=60,
    max_retries=8,
)
def send_action_item_reminder(owner_id: int, action_item_ids: list[int]) -> None:
    """Mail an owner the list of their overdue action items."""
    owner = get_user_model().objects.filter(pk=owner_id).first()
    items = list(
        ActionItem.objects.filter(pk__in=action_item_ids)
        .select_related("postmortem", "postmortem__incident")
        .order_by("due_date", "id")
    )
    items = [item for item in items if not item.is_closed]
    if owner is None or not owner.email or not items:
        return
    action_item_reminder_message(owner, items).send()


@shared_task(name="postmortems.send_review_reminders", ignore_result=True)
def send_review_reminders() -> int:
    """Remind attendees of reviews starting soon (once per review and time)."""
    from datetime import timedelta

    from django.conf import settings

    now = timezone.now()
    ids = Review.objects.filter(
        status=ReviewStatus.SCHEDULED,
        reminder_sent_at__isnull=True,
        starts_at__gt=now,
        starts_at__lte=now + timedelta(hours=settings.QUELL_REVIEW_REMINDER_HOURS),
    ).values_list("pk", flat=True)
    return sum(services.review_send_reminder(review_id=pk, now=now) for pk in ids)


@shared_task(name="postmortems.flag_missed_review_deadlines", ignore_result=True)
def flag_missed_review_deadlines() -> int:
    """Flag postmortems whose review deadline passed without a review."""
    now = timezone.now()
    ids = Postmortem.objects.filter(
        review_due_at__lt=now,
        review_deadline_missed_at__isnull=True,
        status__in=(PostmortemStatus.DRAFT, PostmortemStatus.IN_REVIEW, PostmortemStatus.PUBLISHED),
    ).values_list("pk", flat=True)
    return sum(services.postmortem_flag_missed_deadline(postmortem_id=pk, now=now) for pk in ids)


@shared_task(name="postmortems.remind_overdue_action_items", ignore_result=True)
def remind_overdue_action_items() -> int:
    """Mail each owner of overdue action items once a day."""
    today = timezone.localdate()
    owner_ids = (
        ActionItem.objects.filter(
            due_date__lt=today, owner__isnull=False, status__in=("open", "in_progress")
        )
        .exclude(reminded_on=today)
        .values_list("owner_id", flat=True)
        .distinct()
    )
    return sum(
        bool(services.action_item_remind_overdue(owner_id=owner_id, today=today))
        for owner_id in owner_ids
    )


@shared_task(
    name="postmortems.settle_action_item_verification",
    bind=True,
    ignore_result=True,
    max_retries=40,
)
def settle_action_item_verification(self, action_item_id: int) -> None:
    """Apply a verification run's verdict; retried while the run is still going."""
    item = services.action_item_settle_verification(action_item_id=action_item_id)
    if item.is_verifying:
        # The worker has not finished the check yet; the periodic sweep is the backstop.
        raise self.retry(countdown=5)


@shared_task(name="postmortems.settle_action_item_verifications", ignore_result=True)
def settle_action_item_verifications() -> int:
    """Backstop: settle every item whose verification run has finished, and run the check of
    every holding item whose window is up again (it closes if the check still passes)."""
    settled = 0
    for pk in items_awaiting_verification():
        item = services.action_item_settle_verification(action_item_id=pk)
        settled += not item.is_verifying
    for pk in items_holding_due():
        item = services.action_item_recheck_if_due(action_item_id=pk)
        settled += item.is_verifying
    return settled
