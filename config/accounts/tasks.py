"""Periodic upkeep of account-level records (scheduled in settings CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from . import idempotency


@shared_task(name="accounts.idempotency_expire")
def idempotency_expire() -> int:
    """Delete Idempotency-Key records older than 24 hours (their keys no longer replay)."""
    return idempotency.expire_records()
