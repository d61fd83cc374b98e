"""Celery tasks: thin wrappers that take ids and call diagnostics.services."""

from celery import shared_task

from . import services
from .pipeline import RUN_TASK_OPTIONS


@shared_task(name="diagnostics.run_diagnostics", **RUN_TASK_OPTIONS)
def run_diagnostics(self, run_id: int) -> None:
    """Execute one queued diagnostic run (a duplicate delivery returns at once)."""
    run = services.diagnostic_run_execute(run_id=run_id, task_id=self.request.id or "")
    # Hooks registered by other apps (detection judges a monitor's run once its results are
    # stored, in a separate task that never re-runs the checks); other runs return at once.
    services.run_finished(run)


@shared_task(name="diagnostics.sweep_stuck_runs", ignore_result=True)
def sweep_stuck_runs() -> dict:
    """Re-queue once, then fail, runs left queued or running past their deadline."""
    return services.diagnostic_runs_sweep()
