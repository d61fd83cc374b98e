"""Celery tasks for comms: thin wrappers that take ids and call services."""

from __future__ import annotations

from celery import shared_task

from incidents.dispatch import dispatch

from . import services


@shared_task(acks_late=True, name="comms.delivery_send", ignore_result=True)
def delivery_send(delivery_id: int) -> str:
    """Make one attempt at a delivery; schedule the next one with backoff if it may succeed."""
    outcome = services.delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None:
        dispatch(delivery_send, delivery_id, countdown=outcome.retry_in)
    return outcome.state


@shared_task(name="comms.initial_notification_send", ignore_result=True)
def initial_notification_send(incident_id: int) -> None:
    """Send the internal initial notification of a newly declared incident."""
    services.initial_notification_send(incident_id=incident_id)


@shared_task(name="comms.reminders_send_due", ignore_result=True)
def reminders_send_due() -> int:
    """Periodic: remind the Communications Lead of every overdue update."""
    return services.reminders_send_due()


@shared_task(name="comms.deliveries_resume", ignore_result=True)
def deliveries_resume() -> int:
    """Periodic: re-enqueue deliveries whose task was lost."""
    return services.deliveries_resume()
