"""Celery task of remediation: the escalation after a grace period (thin; takes an id)."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


# Retried only when Quell's own database hiccups; the action's status guard makes a second
# delivery a no-op.
@shared_task(
    name="diagnostics.remediation_escalate",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    max_retries=5,
)
def remediation_escalate(action_id: int) -> None:
    """Terminate what a cancel did not stop, once the grace period is over."""
    services.remediation_escalate(action_id=action_id)


@shared_task(name="diagnostics.remediation_escalations_due", ignore_result=True)
def remediation_escalations_due() -> int:
    """Escalate what is past its grace period when its own task never arrived."""
    return services.remediation_escalations_due()
