"""Celery tasks for integrity runs: thin, take ids, registered through diagnostics.tasks."""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from . import services


# Retried only for Quell's own database hiccups; a target's problems become results. A retry is
# safe: the run is claimed once, under its row lock, and a claimed run is left alone.
@shared_task(
    name="diagnostics.run_integrity",
    bind=True,
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=2,
    retry_backoff_max=60,
    max_retries=5,
)
def run_integrity(self, run_id: int) -> None:
    """Execute one queued integrity run (a duplicate delivery returns at once)."""
    services.integrity_run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(name="diagnostics.sweep_stuck_integrity_runs", ignore_result=True)
def sweep_stuck_integrity_runs() -> dict:
    """Re-queue once, then fail, integrity runs left queued or running past their deadline."""
    return services.integrity_runs_sweep()
