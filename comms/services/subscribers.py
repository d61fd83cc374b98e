"""Status page subscribers: double opt-in by e-mail, one-click unsubscribe, signed links."""

from __future__ import annotations

import datetime
import logging

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..models import (
    ChannelKind,
    Delivery,
    DeliveryKind,
    Subscriber,
)
from .common import (
    CommsError,
    _enqueue_on_commit,
    _site_name,
)

logger = logging.getLogger(__name__)


CONFIRM_SALT = "comms.subscriber.confirm"


UNSUBSCRIBE_SALT = "comms.subscriber.unsubscribe"


CONFIRM_MAX_AGE = datetime.timedelta(days=7)


CONFIRM_RESEND_AFTER = datetime.timedelta(minutes=10)


def unsubscribe_url(subscriber: Subscriber) -> str:
    """The signed link that unsubscribes this subscriber (never expires)."""
    token = signing.dumps({"s": subscriber.pk, "e": subscriber.email}, salt=UNSUBSCRIBE_SALT)
    return settings.QUELL_BASE_URL.rstrip("/") + f"/status/unsubscribe/{token}/"


def _confirm_url(sub: Subscriber) -> str:
    """The signed confirmation link (valid CONFIRM_MAX_AGE)."""
    token = signing.dumps({"s": sub.pk, "e": sub.email}, salt=CONFIRM_SALT)
    return settings.QUELL_BASE_URL.rstrip("/") + f"/status/subscribe/confirm/{token}/"


@transaction.atomic
def subscriber_subscribe(*, email: str) -> Subscriber:
    """Start a subscription: record the address and send a confirmation link (double opt-in).

    Idempotent and quiet: an address already confirmed is left alone, a pending one gets a new
    link at most every few minutes, so the form cannot be used to flood somebody's inbox.
    """
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise CommsError("Enter a valid e-mail address.", field="email") from None
    sub = Subscriber.objects.select_for_update().filter(email__iexact=email).first()
    now = timezone.now()
    if sub is None:
        try:
            with transaction.atomic():
                sub = Subscriber.objects.create(email=email)
        except IntegrityError:
            sub = Subscriber.objects.select_for_update().get(email__iexact=email)
    if sub.is_active:
        return sub
    if sub.confirmation_sent_at and now - sub.confirmation_sent_at < CONFIRM_RESEND_AFTER:
        return sub
    if sub.unsubscribed_at is not None:
        # Coming back: confirm again before anything is sent.
        sub.unsubscribed_at = None
        sub.confirmed_at = None
    sub.confirmation_sent_at = now
    sub.save()
    name = _site_name()
    delivery = Delivery.objects.create(
        kind=DeliveryKind.CONFIRMATION,
        transport=ChannelKind.EMAIL,
        subscriber=sub,
        recipients=[sub.email],
        destination=f"subscriber #{sub.pk}",
        subject=f"Confirm your subscription to {name} status updates",
        body=(
            f"Someone (hopefully you) asked to receive {name} status updates at this address.\n\n"
            f"Confirm within 7 days: {_confirm_url(sub)}\n\n"
            "If it was not you, ignore this message and nothing will be sent."
        ),
        max_attempts=settings.QUELL_COMMS_MAX_ATTEMPTS,
    )
    _enqueue_on_commit([delivery.pk])
    return sub


def _load_token(token: str, *, salt: str, max_age=None, lock: bool = False) -> Subscriber:
    """The subscriber a signed link names (locked, inside the caller's transaction, with
    `lock`); CommsError when invalid or expired."""
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        raise CommsError("This link has expired; subscribe again.", field="token") from None
    except signing.BadSignature:
        raise CommsError("This link is not valid.", field="token") from None
    subscribers = Subscriber.objects.select_for_update() if lock else Subscriber.objects
    sub = subscribers.filter(pk=data.get("s")).first()
    if sub is None or sub.email.lower() != str(data.get("e", "")).lower():
        raise CommsError("This subscription no longer exists.", field="token")
    return sub


@transaction.atomic
def subscriber_confirm(*, token: str) -> Subscriber:
    """Confirm a subscription from the link in the confirmation e-mail."""
    sub = _load_token(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE, lock=True)
    if sub.unsubscribed_at is not None:
        raise CommsError("This address unsubscribed; subscribe again.", field="token")
    if sub.confirmed_at is None:
        sub.confirmed_at = timezone.now()
        sub.save(update_fields=["confirmed_at"])
    return sub


def subscriber_confirm_check(*, token: str) -> Subscriber:
    """The subscriber a confirmation link names, unchanged (raises CommsError for a bad link)."""
    sub = _load_token(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    if sub.unsubscribed_at is not None:
        raise CommsError("This address unsubscribed; subscribe again.", field="token")
    return sub


def subscriber_unsubscribe_check(*, token: str) -> Subscriber:
    """The subscriber an unsubscribe link names (raises CommsError for a bad link)."""
    return _load_token(token, salt=UNSUBSCRIBE_SALT)


@transaction.atomic
def subscriber_unsubscribe(*, token: str) -> Subscriber:
    """Stop all updates to an address (the link in every update; no login, no questions)."""
    sub = _load_token(token, salt=UNSUBSCRIBE_SALT, lock=True)
    if sub.unsubscribed_at is None:
        sub.unsubscribed_at = timezone.now()
        sub.save(update_fields=["unsubscribed_at"])
    return sub


@transaction.atomic
def subscriber_delete(*, subscriber_id: int, actor) -> None:
    """Forget a subscriber (its past deliveries stay, without the link)."""
    Subscriber.objects.filter(pk=subscriber_id).delete()
