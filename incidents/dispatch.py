"""Sending Celery tasks without ever hanging or failing the caller.

Every task Quell sends from a request (and from its sweeps) goes through `dispatch` or
`dispatch_calls`. The broker's clients have short timeouts (settings QUELL_BROKER_TIMEOUT_S,
CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_TASK_PUBLISH_RETRY_POLICY), so a Redis that is down or
accepts connections and never answers costs a request about a second, once: after a failure
this process parks work without asking the broker again for QUELL_BROKER_BACKOFF_S.

A task that could not be sent is parked in the database (ParkedTask) and sent again by
`dispatch_parked`: beat runs it every QUELL_DISPATCH_SWEEP_INTERVAL_S and a worker runs it when
it becomes ready. Quell's tasks claim their row before working, so a task sent twice (the first
send did reach the broker before the error, or a sweep re-sent queued work) executes once.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import kombu.exceptions
import redis.exceptions
from celery import current_app
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)

# What a broker that is down, refusing or stalled raises through Celery/kombu/redis-py.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    kombu.exceptions.OperationalError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OSError,
)

_breaker_lock = threading.Lock()
_broker_down_until = 0.0


@dataclass(frozen=True)
class Call:
    """One task to send: its registered name, arguments and delivery options."""

    task: str
    args: tuple = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    task_id: str | None = None
    countdown: float | None = None
    eta: datetime.datetime | None = None

    def when(self) -> datetime.datetime | None:
        if self.eta is not None:
            return self.eta
        if self.countdown:
            return timezone.now() + datetime.timedelta(seconds=self.countdown)
        return None


def _name(task) -> str:
    return task if isinstance(task, str) else task.name


def call(task, *args, task_id: str | None = None, countdown: float | None = None, **kwargs) -> Call:
    """A Call for a task object (or its name) with positional and keyword arguments."""
    return Call(_name(task), tuple(args), dict(kwargs), task_id=task_id, countdown=countdown)


def broker_backing_off() -> bool:
    """True while this process skips the broker after a recent failure."""
    return time.monotonic() < _broker_down_until


def _trip_breaker() -> None:
    global _broker_down_until
    with _breaker_lock:
        _broker_down_until = time.monotonic() + float(settings.QUELL_BROKER_BACKOFF_S)


def reset_breaker() -> None:
    """Forget a recent broker failure (tests; a worker that just connected)."""
    global _broker_down_until
    with _breaker_lock:
        _broker_down_until = 0.0


def _send(c: Call) -> None:
    options: dict[str, Any] = {}
    if c.task_id:
        options["task_id"] = c.task_id
    eta = c.when()
    if eta is not None:
        options["eta"] = eta
    current_app.signature(c.task, args=list(c.args), kwargs=c.kwargs).apply_async(**options)


def _park(calls: list[Call], error: str) -> None:
    from .models import ParkedTask

    try:
        ParkedTask.objects.bulk_create(
            ParkedTask(
                task=c.task,
                args=list(c.args),
                kwargs=c.kwargs,
                task_id=c.task_id or "",
                eta=c.when(),
                last_error=error[:1000],
            )
            for c in calls
        )
    except Exception:
        # Quell's own database is gone too: nothing more can be done here. Queued runs and
        # pending deliveries are still found by their sweeps once both are back.
        logger.exception("Could not park %d task(s) after a broker failure", len(calls))


def dispatch_calls(calls: Iterable[Call]) -> int:
    """Send each call in order; park it and every later one at the first broker failure.

    Never raises for a broker problem. Returns how many were sent.
    """
    calls = list(calls)
    if not calls:
        return 0
    if broker_backing_off():
        logger.warning("Broker failed recently; parked %d task(s) without trying", len(calls))
        _park(calls, "not sent: the broker failed moments before")
        return 0
    for index, c in enumerate(calls):
        try:
            _send(c)
        except BROKER_ERRORS as exc:
            _trip_breaker()
            rest = calls[index:]
            logger.warning(
                "Broker unavailable (%s: %s); parked %d task(s), first %s",
                type(exc).__name__,
                exc,
                len(rest),
                c.task,
            )
            _park(rest, f"{type(exc).__name__}: {exc}")
            return index
        except Exception:
            # A bug (an argument that does not serialise, an unknown task), not an outage:
            # parking would only fail again. Logged, never raised into the caller.
            logger.exception("Could not send task %s", c.task)
    return len(calls)


def dispatch(task, *args, task_id: str | None = None, countdown: float | None = None, **kwargs):
    """Send one task now; on a broker failure park it for the sweep. True when it was sent."""
    return dispatch_calls([call(task, *args, task_id=task_id, countdown=countdown, **kwargs)]) == 1


def dispatch_on_commit(task, *args, task_id=None, countdown=None, **kwargs) -> None:
    """Send one task once the current transaction commits (at once outside a transaction)."""
    c = call(task, *args, task_id=task_id, countdown=countdown, **kwargs)
    transaction.on_commit(lambda: dispatch_calls([c]))


def calls_on_commit(calls: list[Call]) -> None:
    """Send these calls once the current transaction commits."""
    if calls:
        transaction.on_commit(lambda: dispatch_calls(calls))


def dispatch_parked(*, limit: int = 500) -> dict[str, int]:
    """Send parked tasks again, oldest first; stop at the first broker failure."""
    from .models import ParkedTask

    counts = {"sent": 0, "left": 0}
    with transaction.atomic():
        # skip_locked: two workers becoming ready at once share the rows instead of waiting.
        rows = list(ParkedTask.objects.select_for_update(skip_locked=True).order_by("pk")[:limit])
        for row in rows:
            task_id = row.task_id or None
            c = Call(row.task, tuple(row.args), row.kwargs, task_id=task_id, eta=row.eta)
            try:
                _send(c)
            except BROKER_ERRORS as exc:
                _trip_breaker()
                ParkedTask.objects.filter(pk__in=[r.pk for r in rows if r.pk >= row.pk]).update(
                    attempts=F("attempts") + 1, last_error=f"{type(exc).__name__}: {exc}"
                )
                logger.warning("Broker still unavailable; parked tasks wait for the next sweep")
                break
            except Exception:
                logger.exception("Parked task %s cannot be sent; dropped", row.task)
            else:
                counts["sent"] += 1
            row.delete()
    counts["left"] = ParkedTask.objects.count()
    if counts["sent"]:
        logger.info("Sent %d parked task(s); %d left", counts["sent"], counts["left"])
    return counts


# --- queued work ----------------------------------------------------------------------------
# Apps register what they keep queued in the database (diagnostic and integrity runs, pending
# deliveries) as providers of Calls; a worker that becomes ready sends it all, so work queued
# while no worker listened (or while the broker was away) starts at once, not at the next sweep.
_queued_work: list[Callable[[], list[Call]]] = []


def register_queued_work(provider: Callable[[], list[Call]]) -> Callable[[], list[Call]]:
    """Register a provider of the Calls that send an app's queued work (once per provider)."""
    if provider not in _queued_work:
        _queued_work.append(provider)
    return provider


def dispatch_queued_work() -> dict[str, int]:
    """Send every registered kind of queued work, then the parked tasks."""
    calls = [c for provider in _queued_work for c in provider()]
    sent = dispatch_calls(calls)
    parked = dispatch_parked()
    logger.info(
        "Dispatched %d queued task(s) of %d and %d parked task(s)",
        sent,
        len(calls),
        parked["sent"],
    )
    return {"queued": len(calls), "sent": sent, "parked_sent": parked["sent"]}
