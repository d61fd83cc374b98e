"""Celery tasks of the incidents app: thin wrappers around incidents.dispatch."""

from celery import shared_task

from . import dispatch


@shared_task(name="incidents.dispatch_parked", ignore_result=True)
def dispatch_parked() -> dict:
    """Periodic: send again the tasks parked while the broker was unavailable."""
    return dispatch.dispatch_parked()


@shared_task(name="incidents.dispatch_queued_work", ignore_result=True)
def dispatch_queued_work() -> dict:
    """Send every run and delivery still queued in the database, then the parked tasks."""
    return dispatch.dispatch_queued_work()
