"""Celery tasks for integrity runs: thin, take ids, registered through diagnostics.tasks."""

from celery import shared_task

from diagnostics.pipeline import RUN_TASK_OPTIONS

from . import services


@shared_task(name="diagnostics.run_integrity", **RUN_TASK_OPTIONS)
def run_integrity(self, run_id: int) -> None:
    """Execute one queued integrity run (a duplicate delivery returns at once)."""
    services.integrity_run_execute(run_id=run_id, task_id=self.request.id or "")


@shared_task(name="diagnostics.sweep_stuck_integrity_runs", ignore_result=True)
def sweep_stuck_integrity_runs() -> dict:
    """Re-queue once, then fail, integrity runs left queued or running past their deadline."""
    return services.integrity_runs_sweep()
