"""The queued -> running -> succeeded/failed lifecycle shared by diagnostic and integrity runs.

Both kinds of run carry status, started_at, finished_at, deadline, requeues, celery_task_id,
execution_token and error; a periodic sweep re-queues a run stuck past its deadline once, then
fails it, so nothing stays hanging when a worker dies or the broker is unreachable.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Callable, Iterable

from django.conf import settings
from django.db import models, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)


class RunLifecycleMixin:
    """Read helpers of a run model; a plain mixin (no fields), so it changes no schema."""

    ACTIVE_STATUSES: tuple[str, ...] = ("queued", "running")

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


def mark_running(run: models.Model, *, running_status: str, task_id: str = "") -> str:
    """Move a locked, queued run to running under a fresh execution token; return the token.

    The token names the execution that owns the run: a late, superseded execution (re-queued by
    the sweep) finds a different token and discards its results.
    """
    token = uuid.uuid4().hex
    now = timezone.now()
    run.status = running_status
    run.started_at = now
    run.deadline = now + datetime.timedelta(seconds=settings.QUELL_DIAGNOSTICS_RUN_DEADLINE_S)
    run.execution_token = token
    if task_id:
        run.celery_task_id = task_id
    run.save(
        update_fields=["status", "started_at", "deadline", "execution_token", "celery_task_id"]
    )
    return token


def stuck_runs_sweep(
    *,
    model: type[models.Model],
    active_statuses: Iterable[str],
    queued_status: str,
    failed_status: str,
    enqueue: Callable[[int, str], None],
    mark_failed: Callable[[models.Model], Iterable[str]],
    timeline_failed: Callable[[models.Model], None],
    label: str,
    now: datetime.datetime | None = None,
) -> dict[str, int]:
    """Runs of `model` stuck in an active status past their deadline: re-queued once, then failed.

    `enqueue(run_id, task_id)` sends the task again (after commit); `mark_failed(run)` sets the
    model's own failure fields and returns their names; `timeline_failed(run)` tells the run's
    incident (only called when the run has one).
    """
    now = now or timezone.now()
    active_statuses = tuple(active_statuses)
    counts = {"requeued": 0, "failed": 0}
    stuck_ids = list(
        model.objects.filter(status__in=active_statuses, deadline__lt=now)
        .order_by("deadline")
        .values_list("pk", flat=True)[:500]
    )
    for run_id in stuck_ids:
        with transaction.atomic():
            run = (
                model.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("target")
                .filter(pk=run_id, status__in=active_statuses, deadline__lt=now)
                .first()
            )
            if run is None:
                continue  # finished meanwhile, or being finished right now
            was = run.status
            if run.requeues < 1 and run.target.enabled:
                run.status = queued_status
                run.requeues += 1
                run.execution_token = ""
                run.started_at = None
                run.celery_task_id = str(uuid.uuid4())
                run.deadline = now + datetime.timedelta(
                    seconds=settings.QUELL_DIAGNOSTICS_QUEUE_DEADLINE_S
                )
                run.save(
                    update_fields=[
                        "status",
                        "requeues",
                        "execution_token",
                        "started_at",
                        "celery_task_id",
                        "deadline",
                    ]
                )
                pair = (run.pk, run.celery_task_id)
                transaction.on_commit(lambda pair=pair: enqueue(*pair))
                counts["requeued"] += 1
                logger.warning("%s %s stuck in %s: re-queued", label, run.pk, was)
                continue
            run.status = failed_status
            run.finished_at = now
            run.execution_token = ""
            run.error = (
                f"Stuck in {was} past its deadline"
                + (" after a re-queue" if run.requeues else "")
                + "; no worker finished it (worker down or broker unreachable?)."
            )
            own_fields = list(mark_failed(run))
            run.save(
                update_fields=["status", "finished_at", "execution_token", "error", *own_fields]
            )
            if run.incident_id:
                timeline_failed(run)
            counts["failed"] += 1
            logger.warning("%s %s stuck in %s: failed", label, run.pk, was)
    return counts
