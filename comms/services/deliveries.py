"""Deliveries: one attempt per Celery task run, recorded, retried with exponential backoff."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from incidents.dispatch import call, dispatch_calls

from .. import events, transports
from ..models import (
    ChannelKind,
    Delivery,
    DeliveryState,
)
from .common import (
    CommsError,
    _enqueue_on_commit,
)

logger = logging.getLogger(__name__)


@dataclass
class AttemptOutcome:
    delivery_id: int
    state: str
    retry_in: float | None = None  # seconds until the next attempt should run


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff after the n-th failed attempt: base * 2^(n-1), capped."""
    base = float(settings.QUELL_COMMS_RETRY_BASE_SECONDS)
    return min(base * (2 ** max(attempt - 1, 0)), float(settings.QUELL_COMMS_RETRY_MAX_SECONDS))


def _claim(delivery_id: int) -> Delivery | None:
    """Lock the row and mark an attempt started; None when there is nothing to do."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("channel")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state in (DeliveryState.DELIVERED, DeliveryState.FAILED):
            return None
        now = timezone.now()
        if delivery.state == DeliveryState.SENDING and delivery.claimed_at is not None:
            # Another worker is on it, unless its claim is older than any send can take
            # (that worker died mid-send): then this run takes over.
            stale_after = datetime.timedelta(seconds=float(settings.QUELL_COMMS_HTTP_TIMEOUT) * 4)
            if now - delivery.claimed_at < stale_after + datetime.timedelta(seconds=30):
                return None
        if delivery.next_attempt_at and delivery.next_attempt_at > now + datetime.timedelta(
            seconds=1
        ):
            # Enqueued early (a duplicate message or a manual resume): not yet.
            return None
        delivery.state = DeliveryState.SENDING
        delivery.claimed_at = now
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.save(update_fields=["state", "claimed_at", "attempts", "last_attempt_at"])
        return delivery


def _send(delivery: Delivery) -> transports.SendResult:
    """One attempt over the delivery's transport, with the channel's current secrets."""
    channel = delivery.channel
    if delivery.transport == ChannelKind.EMAIL:
        return transports.send_email(
            recipients=list(delivery.recipients),
            subject=delivery.subject,
            body=delivery.body,
            headers=(delivery.extra or {}).get("headers"),
        )
    if channel is None:
        raise transports.SendError("The channel was deleted.", transient=False)
    if not channel.enabled:
        raise transports.SendError("The channel is disabled.", transient=False)
    if delivery.transport == ChannelKind.SLACK:
        return transports.send_slack(url=channel.url, subject=delivery.subject, body=delivery.body)
    payload = dict((delivery.extra or {}).get("payload") or {})
    payload.setdefault("event", delivery.kind)
    payload["delivery_id"] = delivery.pk
    return transports.send_webhook(
        url=channel.url, secret=channel.signing_secret, payload=payload, delivery_id=delivery.pk
    )


def delivery_attempt(*, delivery_id: int) -> AttemptOutcome:
    """Make one attempt at a delivery and record its outcome.

    Not one transaction on purpose: the row is claimed (locked, attempt counted) and committed
    before the network call, so no lock is held while a receiver is slow, and the result is
    recorded in a second short transaction.
    """
    delivery = _claim(delivery_id)
    if delivery is None:
        current = Delivery.objects.filter(pk=delivery_id).values_list("state", flat=True).first()
        return AttemptOutcome(delivery_id, current or "missing")
    try:
        result = _send(delivery)
        error, transient, code, excerpt = "", False, result.code, result.excerpt
    except transports.SendError as exc:
        error, transient, code, excerpt = str(exc), exc.transient, exc.code, exc.excerpt
    except Exception as exc:  # an unexpected bug in a sender still ends the attempt cleanly
        logger.exception("delivery %s crashed", delivery_id)
        error, transient, code, excerpt = f"Unexpected error: {exc!r}", True, None, ""
    return _record(delivery_id, error=error, transient=transient, code=code, excerpt=excerpt)


@transaction.atomic
def _record(delivery_id: int, *, error: str, transient: bool, code, excerpt: str) -> AttemptOutcome:
    """Store an attempt's outcome: delivered, retry later (backoff) or failed for good."""
    delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
    now = timezone.now()
    delivery.response_code = code
    delivery.response_excerpt = (excerpt or "")[: transports.EXCERPT_CHARS]
    delivery.claimed_at = None
    if not error:
        delivery.state = DeliveryState.DELIVERED
        delivery.delivered_at = now
        delivery.error = ""
        delivery.next_attempt_at = None
        delivery.save()
        return AttemptOutcome(delivery_id, delivery.state)
    delivery.error = error[:2000]
    if transient and delivery.attempts < delivery.max_attempts:
        wait = backoff_seconds(delivery.attempts)
        delivery.state = DeliveryState.RETRYING
        delivery.next_attempt_at = now + datetime.timedelta(seconds=wait)
        delivery.save()
        return AttemptOutcome(delivery_id, delivery.state, retry_in=wait)
    delivery.state = DeliveryState.FAILED
    delivery.next_attempt_at = None
    delivery.save()
    if delivery.incident_id:
        events.delivery_failed_event(delivery)
    return AttemptOutcome(delivery_id, delivery.state)


@transaction.atomic
def delivery_retry(*, delivery_id: int, actor) -> Delivery:
    """Send a failed delivery again (a few more attempts), on request of a person."""
    delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None:
        raise CommsError(f"Delivery {delivery_id} does not exist.", field="delivery")
    if delivery.state != DeliveryState.FAILED:
        raise CommsError(
            f"Only failed deliveries can be retried; this one is {delivery.state}.",
            field="delivery",
        )
    delivery.state = DeliveryState.PENDING
    delivery.max_attempts = delivery.attempts + settings.QUELL_COMMS_MAX_ATTEMPTS
    delivery.next_attempt_at = None
    delivery.save()
    if delivery.incident_id:
        events.delivery_retried_event(delivery, actor=actor)
    _enqueue_on_commit([delivery.pk])
    return delivery


def deliveries_resume(*, now: datetime.datetime | None = None) -> int:
    """Re-enqueue deliveries whose task was lost (broker outage, worker killed). Returns count."""
    now = now or timezone.now()
    grace = datetime.timedelta(seconds=60)
    stale = datetime.timedelta(seconds=float(settings.QUELL_COMMS_HTTP_TIMEOUT) * 4 + 30)
    ids = list(
        Delivery.objects.filter(
            Q(state=DeliveryState.PENDING, created_at__lt=now - grace)
            | Q(state=DeliveryState.RETRYING, next_attempt_at__lt=now - grace)
            | Q(state=DeliveryState.SENDING, claimed_at__lt=now - stale)
        ).values_list("pk", flat=True)[:500]
    )
    from ..tasks import delivery_send

    dispatch_calls([call(delivery_send, pk) for pk in ids])
    return len(ids)
