"""One pipeline for every kind of run: create, enqueue, claim, execute, finish and sweep.

Diagnostic runs (diagnostics.services) and integrity runs (diagnostics.integrity.services) are
BaseRun rows (diagnostics.models) and take the same steps here; a `RunKind` says what differs
(the model, its Celery task, the checks it runs, what its results add up to, what an incident
is told).

- create: a run starts queued, with a deadline and its Celery task id; the task is sent after
  commit (incidents.dispatch parks it when the broker is down: the run stays queued in the
  database, where a worker becoming ready or the sweep sends it again).
- claim: the task moves the queued run to running under its row lock and a fresh execution
  token; a duplicate delivery (acks_late, a re-sent message) finds it claimed and returns.
- execute: the checks talk to the target with no transaction and no lock held in Quell's
  database. A target's problems are results; a known failure (RunFailed, an undecryptable
  secret, the worker's time limit) is the run's error; anything else an internal error.
- finish: the results and the final status commit together, if this execution still owns the
  run: a late execution the sweep took over finds a different token and its results are dropped.
- sweep: a run stuck queued or running past its deadline is re-queued once, then failed.

Not one transaction on purpose: the claim commits first so the run shows as running, and a slow
target never holds a lock here. The bookkeeping commits without waiting for the WAL flush: a
crash of Quell's database server can lose the last moments of a run's state, which the sweep
repairs (re-queue or fail); a run never pays a disk flush per step.
"""

from __future__ import annotations

import datetime
import logging
import uuid

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from config.kernel.secrets import scrub
from config.kernel.sql import server_bound_cursor
from incidents.dispatch import Call, call, dispatch_calls

from . import crypto
from .models import ACTIVE_RUN_STATUSES, BaseRun, RunStatus

# How every run's Celery task is declared. Retried only for Quell's own database being briefly
# unreachable (a target's problems never raise; they become results). A retry is safe: the run
# is claimed once, under its row lock, and a claimed run is left alone.
RUN_TASK_OPTIONS = {
    "bind": True,
    "acks_late": True,
    "ignore_result": True,
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "max_retries": 5,
}

logger = logging.getLogger(__name__)

# How many runs one sweep (or one worker becoming ready) handles at the most.
BATCH = 500


class RunFailed(Exception):
    """A failure a kind's checks report as the run's error, worded for everyone who sees it."""


class RunKind:
    """What differs between kinds of run; each app's services module makes one instance."""

    model: type[BaseRun]
    label: str  # "Diagnostic run", for logs

    def task(self):
        """The Celery task that executes one run, taking its id. Imported when asked for (the
        tasks module imports the services): sending by a name Celery has not registered in
        this process would skip eager mode and the task's own options."""
        raise NotImplementedError

    def enqueue(self, pairs: list[tuple[int, str]]) -> None:
        """Send the task of each (run id, task id) pair. Apps route this through their own
        services function, which tests replace to stand in for the broker."""
        send(self, pairs)

    def execute_checks(self, run: BaseRun, spec) -> list:
        """Run the checks against the target (spec: its ConnectionSpec) and return the result
        rows, unsaved and scrubbed of spec.secrets(). Raise RunFailed for a run-level failure."""
        raise NotImplementedError

    def finished_fields(self, run: BaseRun, rows: list, status: str) -> dict:
        """The kind's own columns of a finished run (what its results add up to)."""
        return {}

    def on_finished(self, run: BaseRun, rows: list) -> None:
        """In the finishing transaction, the results stored: summary, the incident's timeline.
        Also called for a run the sweep fails (with no rows)."""


def create(kind: RunKind, *, now: datetime.datetime | None = None, **fields) -> BaseRun:
    """A new queued run; send it with enqueue_on_commit."""
    now = now or timezone.now()
    return kind.model.objects.create(
        status=RunStatus.QUEUED,
        queued_at=now,
        deadline=now + datetime.timedelta(seconds=settings.QUELL_DIAGNOSTICS_QUEUE_DEADLINE_S),
        celery_task_id=str(uuid.uuid4()),
        **fields,
    )


def active_run(kind: RunKind, **identity) -> BaseRun | None:
    """An identical run still queued or running: returned instead of starting a second one, so
    a double click does not double the load on a struggling target."""
    return kind.model.objects.filter(status__in=ACTIVE_RUN_STATUSES, **identity).first()


def enqueue_on_commit(kind: RunKind, runs: list[BaseRun]) -> None:
    """Send the runs' tasks once the transaction commits: one task per run, so the workers
    share a fan-out."""
    pairs = [(run.pk, run.celery_task_id) for run in runs]
    transaction.on_commit(lambda: kind.enqueue(pairs))


def send(kind: RunKind, pairs: list[tuple[int, str]]) -> None:
    """Send the tasks now; a broker outage parks them (incidents.dispatch)."""
    task = kind.task()
    dispatch_calls([call(task, pk, task_id=task_id) for pk, task_id in pairs])


def queued_run_calls(kind: RunKind) -> list[Call]:
    """The tasks that send every queued run of a kind (for a worker becoming ready)."""
    task = kind.task()
    rows = kind.model.objects.filter(status=RunStatus.QUEUED).order_by("queued_at", "pk")
    return [
        call(task, pk, task_id=task_id or None)
        for pk, task_id in rows.values_list("pk", "celery_task_id")[:BATCH]
    ]


def _relaxed_commit() -> None:
    """This transaction commits without waiting for the WAL flush (SET LOCAL: this one only)."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def claim(kind: RunKind, run_id: int, task_id: str = "") -> tuple[BaseRun | None, str]:
    """Move a queued run to running under its row lock; (run, execution token), or (None, "")
    when the run is gone or another delivery has it."""
    with transaction.atomic():
        _relaxed_commit()
        run = (
            kind.model.objects.select_for_update(of=("self",))
            .select_related("target")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            logger.warning("%s %s does not exist; nothing to do", kind.label, run_id)
            return None, ""
        if run.status != RunStatus.QUEUED:
            # A duplicate delivery: the first one owns the run.
            logger.info("%s %s is %s; duplicate delivery ignored", kind.label, run_id, run.status)
            return None, ""
        token = uuid.uuid4().hex
        now = timezone.now()
        run.status = RunStatus.RUNNING
        run.started_at = now
        run.deadline = now + datetime.timedelta(seconds=settings.QUELL_DIAGNOSTICS_RUN_DEADLINE_S)
        run.execution_token = token
        if task_id:
            run.celery_task_id = task_id
        run.save(
            update_fields=[
                "status",
                "started_at",
                "deadline",
                "execution_token",
                "celery_task_id",
                "updated_at",
            ]
        )
        return run, token


def execute(kind: RunKind, *, run_id: int, task_id: str = "") -> BaseRun | None:
    """Claim a queued run, run its checks once and store the results (the Celery task's body).
    None for a duplicate delivery or a run taken over meanwhile."""
    run, token = claim(kind, run_id, task_id)
    if run is None:
        return None
    rows: list = []
    error = ""
    secrets: tuple[str, ...] = ()
    try:
        spec = run.target.to_connection_spec()
        secrets = tuple(spec.secrets())
        rows = kind.execute_checks(run, spec)
    except (crypto.SecretError, RunFailed) as exc:
        error = str(exc)
    except SoftTimeLimitExceeded:
        error = (
            f"The run took longer than the worker's time limit "
            f"({settings.CELERY_TASK_SOFT_TIME_LIMIT} s) and was stopped."
        )
    except Exception as exc:
        # The checks never raise for target problems: this is a bug in Quell, not the target.
        logger.exception("%s %s failed unexpectedly", kind.label, run_id)
        error = f"Internal error while running checks: {type(exc).__name__}"
    return finish(kind, run, token=token, rows=rows, error=error, secrets=secrets)


def _insert_results(rows: list) -> None:
    """Insert a run's result rows in one pipelined round trip, parameters bound server-side.

    Django binds client-side: libpq escapes each value into the SQL text. A run's findings
    are about 100 kB of JSON at 100 tables, and escaping them was most of storing the run
    (5 ms of a 73 ms run at 100 tables, bench/diagnostics.py); a server-binding cursor on
    the same connection (config.kernel.sql), so in the same transaction, sends them as
    parameters: 3 ms. The rows get no primary key back (nothing reads it: the run's summary
    and hooks use their fields).
    """
    model = type(rows[0])
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        connection.ops.quote_name(model._meta.db_table),
        ", ".join(connection.ops.quote_name(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    params = [
        [f.get_db_prep_save(f.pre_save(row, add=True), connection) for f in fields] for row in rows
    ]
    with server_bound_cursor() as cursor:
        cursor.executemany(sql, params)


def finish(
    kind: RunKind,
    run: BaseRun,
    *,
    token: str,
    rows: list,
    error: str = "",
    secrets: tuple[str, ...] = (),
) -> BaseRun | None:
    """Store the result rows and the final status, if this execution still owns the run."""
    status = RunStatus.FAILED if error else RunStatus.SUCCEEDED
    now = timezone.now()
    fields = {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "error": scrub(error, secrets) if error else "",
        **kind.finished_fields(run, rows, status),
    }
    with transaction.atomic():
        _relaxed_commit()
        # The conditional UPDATE takes the row lock and checks ownership in one statement: an
        # execution the sweep took over (or a duplicate) finds nothing to update.
        owned = kind.model.objects.filter(
            pk=run.pk, status=RunStatus.RUNNING, execution_token=token
        ).update(**fields)
        if not owned:
            logger.warning("%s %s was taken over; late results discarded", kind.label, run.pk)
            return None
        if rows:
            _insert_results(rows)
        for name, value in fields.items():
            setattr(run, name, value)
        kind.on_finished(run, rows)
    return run


def sweep(kind: RunKind, *, now: datetime.datetime | None = None) -> dict[str, int]:
    """Runs stuck in queued or running past their deadline: re-queued once (when the target is
    still enabled), then failed, with the incident told. Nothing stays hanging when a worker
    dies or the broker is unreachable."""
    now = now or timezone.now()
    counts = {"requeued": 0, "failed": 0}
    stuck = {"status__in": ACTIVE_RUN_STATUSES, "deadline__lt": now}
    stuck_ids = list(
        kind.model.objects.filter(**stuck).order_by("deadline").values_list("pk", flat=True)[:BATCH]
    )
    for run_id in stuck_ids:
        with transaction.atomic():
            run = (
                kind.model.objects.select_for_update(of=("self",), skip_locked=True)
                .select_related("target")
                .filter(pk=run_id, **stuck)
                .first()
            )
            if run is None:
                continue  # finished meanwhile, or being finished right now
            was = run.status
            if run.requeues < 1 and run.target.enabled:
                _requeue(kind, run, now)
                counts["requeued"] += 1
                logger.warning("%s %s stuck in %s: re-queued", kind.label, run.pk, was)
            else:
                _fail_stuck(kind, run, now)
                counts["failed"] += 1
                logger.warning("%s %s stuck in %s: failed", kind.label, run.pk, was)
    return counts


def _requeue(kind: RunKind, run: BaseRun, now: datetime.datetime) -> None:
    run.status = RunStatus.QUEUED
    run.requeues += 1
    run.execution_token = ""
    run.started_at = None
    run.celery_task_id = str(uuid.uuid4())
    run.deadline = now + datetime.timedelta(seconds=settings.QUELL_DIAGNOSTICS_QUEUE_DEADLINE_S)
    run.save(
        update_fields=[
            "status",
            "requeues",
            "execution_token",
            "started_at",
            "celery_task_id",
            "deadline",
            "updated_at",
        ]
    )
    enqueue_on_commit(kind, [run])


def _fail_stuck(kind: RunKind, run: BaseRun, now: datetime.datetime) -> None:
    was = run.status
    run.status = RunStatus.FAILED
    run.finished_at = now
    run.execution_token = ""
    run.error = (
        f"Stuck in {was} past its deadline"
        + (" after a re-queue" if run.requeues else "")
        + "; no worker finished it (worker down or broker unreachable?)."
    )
    own = kind.finished_fields(run, [], RunStatus.FAILED)
    for name, value in own.items():
        setattr(run, name, value)
    run.save(
        update_fields=["status", "finished_at", "execution_token", "error", "updated_at", *own]
    )
    kind.on_finished(run, [])
