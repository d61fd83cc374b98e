"""Celery tasks: thin wrappers that take ids and call diagnostics.services."""

from celery import shared_task

from . import services


@shared_task(name="diagnostics.run_diagnostics", bind=True, acks_late=True, ignore_result=True)
def run_diagnostics(self, run_id: int) -> None:
    """Execute one queued diagnostic run (a duplicate delivery returns at once)."""
    services.diagnostic_run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(name="diagnostics.sweep_stuck_runs", ignore_result=True)
def sweep_stuck_runs() -> dict:
    """Re-queue once, then fail, runs left queued or running past their deadline."""
    return services.diagnostic_runs_sweep()
