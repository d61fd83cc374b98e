"""`Idempotency-Key` on creates: a retried request replays the first answer instead of writing
twice (docs/api.md#idempotency).

A client that timed out cannot know whether its POST created the incident; sending the same
request again with the same key is then safe. Within IDEMPOTENCY_TTL, the same user sending the
same key gets the original status, body and Location back (with `Idempotent-Replayed: true`) and
nothing is written. The same key with a different request (method, path or body) is a 422.

Concurrency: the record is inserted in the same transaction as the create, under a unique
constraint on (user, key). A second request with the key, arriving while the first is still
running, blocks on that insert until the first commits, then replays its answer; if the first
failed (an error answer, or an exception) its transaction is rolled back with the record, and
the second runs as if it were first. Only success answers (2xx) are kept: a refused request may
be corrected and sent again under the same key.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import re

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
IDEMPOTENCY_TTL = datetime.timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Printable ASCII without spaces at either end: UUIDs, ULIDs and the like all fit.
_KEY = re.compile(r"^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$")

PARAMETER = OpenApiParameter(
    name=HEADER,
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description=(
        "Makes the create safe to retry: a repeat with the same key by the same user within "
        "24 hours gets the original answer (status, body, Location) and writes nothing; the "
        "same key with a different body is a 422. Up to 255 printable ASCII characters "
        "(a UUID is a good key)."
    ),
)


class IdempotencyKeyReused(APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = (
        "This Idempotency-Key was already used for a different request: "
        "send a new key for a new request."
    )
    default_code = "idempotency_key_reused"


def _valid_key(raw: str) -> str:
    if not raw or len(raw) > MAX_KEY_LENGTH or not _KEY.match(raw):
        raise serializers.ValidationError(
            {
                HEADER: [
                    f"Send 1 to {MAX_KEY_LENGTH} printable ASCII characters (a UUID is a good key)."
                ]
            }
        )
    return raw


def fingerprint(request) -> str:
    """What makes two requests the same one: method, path and the JSON body, canonically."""
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder)
    text = f"{request.method}\n{request.path}\n{body}"
    return hashlib.sha256(text.encode()).hexdigest()


def _replay(record: IdempotencyRecord, fingerprint_now: str) -> Response:
    if record.fingerprint != fingerprint_now:
        raise IdempotencyKeyReused()
    headers = {REPLAYED_HEADER: "true"}
    if record.location:
        headers["Location"] = record.location
    return Response(record.body, status=record.status_code, headers=headers)


def _stored_body(data):
    # What the client received: the serializer's output as JSON (dates as ISO strings etc.).
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def expire_records(now: datetime.datetime | None = None) -> int:
    """Delete records older than IDEMPOTENCY_TTL (the periodic cleanup); returns how many."""
    cutoff = (now or timezone.now()) - IDEMPOTENCY_TTL
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def idempotent(view_method):
    """Decorate an API view's create method (post) to honour `Idempotency-Key`.

    The schema shows the header on the operation (incidents.api.schema reads `idempotent`).
    Requests without the header, or by a principal that is not a user (the alert webhooks'
    shared secret), are unaffected.
    """

    @functools.wraps(view_method)
    def wrapper(view, request, *args, **kwargs):
        raw = request.headers.get(HEADER)
        user = request.user
        if raw is None or not getattr(user, "is_authenticated", False) or user.pk is None:
            return view_method(view, request, *args, **kwargs)
        key = _valid_key(raw)
        sent = fingerprint(request)
        now = timezone.now()
        # An expired record no longer answers for its key: the key may be used afresh.
        IdempotencyRecord.objects.filter(
            user=user, key=key, created_at__lt=now - IDEMPOTENCY_TTL
        ).delete()
        with transaction.atomic():
            try:
                with transaction.atomic():
                    record = IdempotencyRecord.objects.create(
                        user=user, key=key, fingerprint=sent, status_code=0, created_at=now
                    )
            except IntegrityError:
                # Taken: by an earlier request, or by a concurrent one this insert waited for.
                record = None
            if record is None:
                earlier = IdempotencyRecord.objects.get(user=user, key=key)
                return _replay(earlier, sent)
            response = view_method(view, request, *args, **kwargs)
            if not status.is_success(response.status_code):
                transaction.set_rollback(True)
                return response
            record.status_code = response.status_code
            record.body = _stored_body(response.data)
            record.location = response.headers.get("Location", "")
            record.save(update_fields=["status_code", "body", "location"])
            return response

    wrapper.idempotent = True
    return wrapper
