"""Run a suite of checks against one target, within bounds, never raising for a target problem.

All checks share one session (one connection, one read-only transaction); each runs in its own
savepoint, with the statistics snapshot cleared before it, so one failure or timeout does not
spoil the others. An unreachable target gives a CRITICAL connection check and ERROR for every
other check at once, without trying each check against a dead server.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable

import psycopg
from psycopg import errors as pg_errors

from .checks.base import Check, CheckOutcome, CheckStatus, PreviousResult
from .target import (
    ConnectionSpec,
    SessionBroken,
    TargetSession,
    TargetUnreachable,
    Timeouts,
    open_session,
    scrub,
)

CONNECTION_CHECK_KEY = "connection"
# Exceptions a worker raises into a run to end it (Celery's time limits): never a check result.
_RUN_LIMITS = {"SoftTimeLimitExceeded", "TimeLimitExceeded", "Terminated", "WorkerLostError"}


@dataclasses.dataclass
class CheckExecution:
    key: str
    outcome: CheckOutcome
    duration_ms: float


def _version_gate(check_class: type[Check], session: TargetSession) -> CheckOutcome | None:
    version = session.server_version_num
    if check_class.min_server_version and version < check_class.min_server_version:
        return CheckOutcome(
            CheckStatus.SKIPPED,
            f"needs PostgreSQL {check_class.min_server_version // 10000} or later "
            f"(server is {version // 10000})",
        )
    if check_class.max_server_version and version > check_class.max_server_version:
        return CheckOutcome(
            CheckStatus.SKIPPED,
            f"not applicable after PostgreSQL {check_class.max_server_version // 10000}",
        )
    return None


def _failure_outcome(
    exc: BaseException, spec: ConnectionSpec, timeouts: Timeouts, session: TargetSession
) -> CheckOutcome:
    """What a check's exception means for its result."""
    message = scrub(str(exc) or exc.__class__.__name__, spec)
    if isinstance(exc, pg_errors.QueryCanceled):
        return CheckOutcome(
            CheckStatus.ERROR,
            f"timed out after {timeouts.statement_ms} ms (statement_timeout)",
            error=message,
        )
    if isinstance(exc, pg_errors.LockNotAvailable):
        return CheckOutcome(
            CheckStatus.ERROR,
            f"catalog locked: a relation is locked by another session (lock_timeout "
            f"{timeouts.lock_ms} ms); not waiting for it",
            error=message,
        )
    if isinstance(exc, pg_errors.InsufficientPrivilege):
        return CheckOutcome(
            CheckStatus.SKIPPED,
            "insufficient privilege: this check cannot see what it needs",
            error=message,
            fix=session.monitor_fix if not session.broken else "GRANT pg_monitor TO <user>;",
        )
    if isinstance(exc, SessionBroken):
        return CheckOutcome(CheckStatus.ERROR, "connection to the target lost", error=message)
    if isinstance(exc, psycopg.Error):
        return CheckOutcome(CheckStatus.ERROR, "query failed on the target", error=message)
    # A bug in the check itself: still a result, never an exception out of the run.
    return CheckOutcome(
        CheckStatus.ERROR,
        f"check failed: {exc.__class__.__name__}",
        error=message,
    )


def _unreachable_results(
    check_classes: list[type[Check]],
    exc: TargetUnreachable,
    spec: ConnectionSpec,
    elapsed_ms: float,
) -> list[CheckExecution]:
    message = scrub(str(exc), spec)
    results = []
    for check_class in check_classes:
        if check_class.key == CONNECTION_CHECK_KEY:
            summary = (
                "too many connections: the server refuses new ones"
                if exc.too_many_clients
                else "target unreachable"
            )
            outcome = CheckOutcome(
                CheckStatus.CRITICAL,
                summary,
                error=message,
                findings=[
                    {"error": message, "sqlstate": exc.sqlstate, "elapsed_ms": round(elapsed_ms, 1)}
                ],
            )
            results.append(CheckExecution(check_class.key, outcome, elapsed_ms))
        else:
            outcome = CheckOutcome(CheckStatus.ERROR, "not run: target unreachable", error=message)
            results.append(CheckExecution(check_class.key, outcome, 0.0))
    return results


def run_checks(
    spec: ConnectionSpec,
    check_classes: Iterable[type[Check]],
    *,
    thresholds: dict[str, dict] | None = None,
    timeouts: Timeouts = Timeouts(),  # noqa: B008
    previous: dict[str, PreviousResult] | None = None,
) -> list[CheckExecution]:
    """Run every check in one session and return one CheckExecution per check, in order.

    `previous`: per check key, that check's result in the target's previous run (checks that
    judge a change, such as new deadlocks, read it as `self.previous`).
    """
    check_classes = list(check_classes)
    thresholds = thresholds or {}
    previous = previous or {}
    results: list[CheckExecution] = []
    started = time.monotonic()
    try:
        with open_session(spec, timeouts) as session:
            for check_class in check_classes:
                results.append(
                    _run_one(
                        check_class,
                        session,
                        spec,
                        timeouts,
                        thresholds.get(check_class.key),
                        previous.get(check_class.key),
                    )
                )
    except TargetUnreachable as exc:
        done = {r.key for r in results}
        elapsed = (time.monotonic() - started) * 1000
        results += _unreachable_results(
            [c for c in check_classes if c.key not in done], exc, spec, elapsed
        )
    return results


def _run_one(
    check_class: type[Check],
    session: TargetSession,
    spec: ConnectionSpec,
    timeouts: Timeouts,
    check_thresholds: dict | None,
    previous: PreviousResult | None = None,
) -> CheckExecution:
    started = time.monotonic()
    outcome = None
    if session.broken:
        outcome = CheckOutcome(
            CheckStatus.ERROR,
            "not run: connection to the target lost",
            error="the connection was lost earlier in this run",
        )
    else:
        try:
            outcome = _version_gate(check_class, session)
            if outcome is None:
                check = check_class(check_thresholds, previous)
                with session.savepoint(fresh_stats=True):
                    outcome = check.run(session)
        except Exception as exc:
            if type(exc).__name__ in _RUN_LIMITS:
                raise  # the task's own time limit: stop the run, do not carry on to the next
            outcome = _failure_outcome(exc, spec, timeouts, session)
    # Defence in depth: nothing a check returns may carry a credential.
    outcome.summary = scrub(outcome.summary, spec)
    outcome.error = scrub(outcome.error, spec)
    if not isinstance(outcome.status, CheckStatus):
        outcome.status = CheckStatus(outcome.status)
    return CheckExecution(check_class.key, outcome, round((time.monotonic() - started) * 1000, 2))


__all__ = ["CheckExecution", "run_checks"]
