"""Celery tasks for monitors: thin, registered through diagnostics.tasks."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from diagnostics.detection.monitors import monitor_run_evaluate, monitor_runs_prune
from diagnostics.detection.monitors import monitor_sweep as _sweep


@shared_task(name="diagnostics.monitor_sweep", ignore_result=True)
def monitor_sweep(**kwargs) -> dict:
    """One monitoring pass over the selected targets (kwargs: see monitors.monitor_sweep)."""
    return _sweep(**kwargs)


# Retried only for Quell's own database hiccups; judging twice is harmless (the dedup path
# counts a repeat instead of writing it again).
@shared_task(
    name="diagnostics.monitor_evaluate",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def monitor_evaluate(run_id: int) -> list:
    """Judge one finished monitoring run against the monitor rules."""
    return monitor_run_evaluate(run_id=run_id)


@shared_task(name="diagnostics.monitor_prune", ignore_result=True)
def monitor_prune() -> dict:
    """Delete monitoring runs past their retention that no incident cites."""
    return monitor_runs_prune()
