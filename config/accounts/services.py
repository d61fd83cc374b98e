"""Writes for API tokens: issue (the only moment the secret exists in clear), revoke, rotate."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import PREFIX_LENGTH, ApiToken


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@transaction.atomic
def token_issue(*, user, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new token for `user`. Returns it with its secret; only the digest is stored, so the
    caller must show the secret now: it cannot be shown again."""
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name,
        prefix=secret[:PREFIX_LENGTH],
        digest=token_digest(secret),
        expires_at=expires_at,
    )
    return token, secret


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Stop a token working now (kept, revoked, for the record)."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


@transaction.atomic
def token_rotate(
    *, user, name: str, expires_at: datetime | None = None
) -> tuple[ApiToken, str, int]:
    """Revoke the user's active tokens called `name` and issue a new one under that name.
    Returns the new token, its secret and how many were revoked."""
    revoked = ApiToken.objects.filter(user=user, name=name, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    token, secret = token_issue(user=user, name=name, expires_at=expires_at)
    return token, secret, revoked
