"""API tokens, stored as SHA-256 digests: the secret is shown once, when the token is made.

A token is 32 random bytes, so a plain SHA-256 digest cannot be reversed or guessed (a slow,
salted password hash is for low-entropy passwords) and can be looked up by equality.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

PREFIX_LENGTH = 8


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What uses it, e.g. 'alertmanager'.")
    # The first characters of the secret: enough to tell tokens apart in lists and logs,
    # far too few to use.
    prefix = models.CharField(max_length=PREFIX_LENGTH, editable=False)
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the token does not expire."
    )
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and not self.is_expired


class IdempotencyRecord(models.Model):
    """The answer to one create sent with an `Idempotency-Key` (config.accounts.idempotency).

    A repeat by the same user with the same key within IDEMPOTENCY_TTL is answered from here, so
    a client retrying after a timeout cannot create the thing twice. The unique constraint on
    (user, key) is what makes concurrent repeats safe: the second insert waits for the first
    request's transaction and then finds its answer.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    # SHA-256 of method, path and the JSON body: the same key with another request is a 422.
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField(null=True)
    location = models.CharField(max_length=2000, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="one_idempotency_record_per_key")
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
