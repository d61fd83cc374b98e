"""Remediation writes: preview, execute (with the confirmed backends), escalate after a grace.

Like the rest of diagnostics, talking to the target happens outside any transaction or row lock
in Quell's database; each step commits its record (and the incident's timeline event) after.
Permission: the commander group, the incident's Incident Commander or its Technical Lead for a
remediation linked to an incident (incidents.permissions.user_may_remediate_incident), the
admin group otherwise; ``force`` (superuser and replication sessions) is
for admins only. Refusals raise DiagnosticsError (400, with the field) or PermissionDenied (403).
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from config.kernel.actors import user_or_none
from config.kernel.permissions import ADMIN, user_has_role
from config.kernel.secrets import scrub
from incidents.dispatch import dispatch
from incidents.models import Incident, Status
from incidents.permissions import user_may_remediate_incident

from .. import crypto
from ..models import IncidentTarget, TargetDatabase
from ..services import DiagnosticsError, finite_number
from ..target import SessionBroken, TargetUnreachable, Timeouts
from . import backends as b
from . import events
from .models import RemediationAction, RemediationKind, RemediationStatus

logger = logging.getLogger(__name__)

VERBS = {
    b.CANCEL: "Cancelled",
    b.TERMINATE: "Terminated",
}


class RemediationRefused(DiagnosticsError):
    code = "remediation_refused"


# --- permission --------------------------------------------------------------------------


def may_remediate(user, *, incident: Incident | None) -> bool:
    """Commanders, the incident's IC or Technical Lead when there is one; admins otherwise."""
    if incident is not None:
        return user_may_remediate_incident(user, incident)
    return user_has_role(user, ADMIN)


def _check_permission(user, incident: Incident | None, force: bool) -> None:
    if not may_remediate(user, incident=incident):
        raise PermissionDenied(
            "Only a commander, an admin, or this incident's Incident Commander or Technical Lead "
            "may remediate."
            if incident is not None
            else "Remediation outside an incident needs the admin role."
        )
    if force and not user_has_role(user, ADMIN):
        raise PermissionDenied(
            "Only an admin may force remediation of superuser or replication sessions."
        )


# --- input -------------------------------------------------------------------------------


def parse_filter(filters: dict[str, Any] | None) -> b.BackendFilter:
    """A BackendFilter from input, or DiagnosticsError naming the field at fault."""
    data = dict(filters or {})
    pid = data.get("pid")
    if pid not in (None, ""):
        try:
            pid = int(pid)
        except (TypeError, ValueError):
            raise DiagnosticsError("pid must be a number.", field="pid") from None
        if pid <= 0:
            raise DiagnosticsError("pid must be a positive number.", field="pid")
    else:
        pid = None
    states = data.get("states") or []
    if isinstance(states, str):
        states = [states]
    states = [str(s) for s in states]
    if data.get("idle_in_transaction"):
        states += [s for s in b.IDLE_IN_TRANSACTION if s not in states]
    unknown = [s for s in states if s not in b.STATES]
    if unknown:
        raise DiagnosticsError(
            f"Unknown state(s): {', '.join(unknown)}. Known: {', '.join(b.STATES)}.",
            field="states",
        )
    min_duration = data.get("min_duration_s")
    if min_duration in ("", None):
        min_duration = None
    else:
        min_duration = finite_number(min_duration, field="min_duration_s", what="seconds")
        if min_duration < 0:
            raise DiagnosticsError("min_duration_s cannot be negative.", field="min_duration_s")
    flt = b.BackendFilter(
        pid=pid,
        states=tuple(dict.fromkeys(states)),
        min_duration_s=min_duration,
        user=str(data.get("user") or "").strip(),
        application=str(data.get("application") or "").strip(),
        query_contains=str(data.get("query_contains") or "").strip(),
    )
    if pid is not None and any(
        (flt.states, flt.min_duration_s is not None, flt.user, flt.application, flt.query_contains)
    ):
        raise DiagnosticsError("Give one pid or a filter, not both.", field="pid")
    if pid is None and not any(
        (flt.states, flt.min_duration_s is not None, flt.user, flt.application, flt.query_contains)
    ):
        # A filter without a condition would hit every session of the database.
        raise DiagnosticsError(
            "Give a pid, or at least one condition (states, min_duration_s, user, application, "
            "query_contains).",
            field="filters",
        )
    return flt


def _timeouts() -> tuple[Timeouts, float]:
    confirm_s = float(settings.QUELL_REMEDIATION_CONFIRM_TIMEOUT_S)
    # pg_terminate_backend(pid, timeout) waits inside the statement: leave it room.
    statement_ms = max(
        int(settings.QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS), int(confirm_s * 1000) + 2000
    )
    return (
        Timeouts(
            connect_s=settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S,
            statement_ms=statement_ms,
            lock_ms=settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS,
        ),
        confirm_s,
    )


def _target_for(target_id: int) -> TargetDatabase:
    target = TargetDatabase.objects.filter(pk=target_id).first()
    if target is None:
        raise DiagnosticsError(f"Target {target_id} does not exist.", field="target")
    if not target.remediation_allowed:
        raise RemediationRefused(
            f"Remediation is not allowed on {target.name}: an admin must turn on "
            "remediation_allowed for this target first.",
            field="target",
        )
    return target


def _incident_for(incident_id: int | None, target: TargetDatabase) -> Incident | None:
    if incident_id is None:
        return None
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise DiagnosticsError(f"Incident {incident_id} does not exist.", field="incident")
    if incident.status == Status.CLOSED:
        raise DiagnosticsError("A closed incident cannot be changed.", field="incident")
    if not IncidentTarget.objects.filter(incident=incident, target=target).exists():
        raise DiagnosticsError(
            f"{target.name} is not an affected target of incident #{incident.pk}; add it first.",
            field="target",
        )
    return incident


def _spec(target: TargetDatabase):
    try:
        return target.to_connection_spec()
    except crypto.SecretError as exc:
        raise DiagnosticsError(str(exc), field="target") from None


def _unreachable(target: TargetDatabase, exc: Exception, spec) -> DiagnosticsError:
    return DiagnosticsError(
        f"Could not reach {target.name}: "
        + scrub(str(exc), secrets=tuple(spec.secrets() if spec else ())),
        field="target",
    )


# --- preview -------------------------------------------------------------------------------


def remediation_preview(
    *,
    target_id: int,
    kind: str,
    filters: dict[str, Any] | None,
    incident_id: int | None = None,
    force: bool = False,
    grace_s: int | None = None,
    database: str = "",
    actor=None,
) -> RemediationAction:
    """List exactly which backends the action would hit (and which the guardrails refuse)."""
    if kind not in RemediationKind.values:
        raise DiagnosticsError(
            f"kind must be one of {', '.join(RemediationKind.values)}.", field="kind"
        )
    target = _target_for(target_id)
    incident = _incident_for(incident_id, target)
    _check_permission(actor, incident, force)
    flt = parse_filter(filters)
    if kind == RemediationKind.CANCEL_THEN_TERMINATE:
        grace_s = settings.QUELL_REMEDIATION_GRACE_S if grace_s in (None, "") else grace_s
        try:
            grace_s = int(grace_s)
        except (TypeError, ValueError):
            raise DiagnosticsError(
                "grace_s must be a number of seconds.", field="grace_s"
            ) from None
        if not 1 <= grace_s <= 3600:
            raise DiagnosticsError("grace_s must be between 1 and 3600 seconds.", field="grace_s")
    else:
        grace_s = None
    spec = _spec(target)
    timeouts, _ = _timeouts()
    failure = None
    try:
        with b.open_remediation_session(spec, timeouts) as session:
            found = b.preview(session, flt, kind=kind, force=force)
    except (TargetUnreachable, SessionBroken, psycopg.Error) as exc:
        failure = _unreachable(target, exc, spec)
    if failure is not None:
        raise failure
    if database and database != found["database"]:
        raise DiagnosticsError(
            f"Remediation acts only on the target's own database ({found['database']}).",
            field="database",
        )
    return RemediationAction.objects.create(
        target=target,
        incident=incident,
        kind=kind,
        filters=flt.as_dict(),
        force=bool(force),
        grace_s=grace_s,
        status=RemediationStatus.PREVIEWED,
        server_version_num=found["server_version_num"],
        database=found["database"],
        preview=found["backends"],
        requested_by=user_or_none(actor),
        previewed_at=timezone.now(),
    )


# --- execute -------------------------------------------------------------------------------


def _confirmed_pairs(action: RemediationAction, confirmed) -> list[dict[str, Any]]:
    """The confirmed pairs, each one of the preview's eligible backends; else a 400."""
    if not isinstance(confirmed, list | tuple) or not confirmed:
        raise DiagnosticsError(
            "Confirm at least one backend from the preview (pid and backend_start).",
            field="confirmed",
        )
    eligible = {}
    for row in action.eligible:
        eligible[(row["pid"], datetime.datetime.fromisoformat(row["backend_start"]))] = row
    out, seen = [], set()
    for item in confirmed:
        try:
            pid = int(item["pid"])
            start = item["backend_start"]
            start = (
                start
                if isinstance(start, datetime.datetime)
                else (datetime.datetime.fromisoformat(str(start)))
            )
        except (KeyError, TypeError, ValueError):
            raise DiagnosticsError(
                "Each confirmed backend needs a pid and its backend_start (ISO 8601).",
                field="confirmed",
            ) from None
        if start.tzinfo is None:
            raise DiagnosticsError(
                "backend_start must carry its time zone, as the preview gives it.",
                field="confirmed",
            )
        if (pid, start) not in eligible:
            raise DiagnosticsError(
                f"pid {pid} started at {start.isoformat()} is not an eligible backend of "
                "this preview; preview again.",
                field="confirmed",
            )
        if (pid, start) in seen:
            continue
        seen.add((pid, start))
        out.append(
            {
                "pid": pid,
                "backend_start": start.isoformat(),
                # A cancel hits the query the responder saw, not whatever runs next.
                "query_start": eligible[(pid, start)].get("query_start"),
            }
        )
    return out


def _claim(*, action_id: int, confirmed, actor) -> RemediationAction:
    with transaction.atomic():
        action = (
            RemediationAction.objects.select_for_update(of=("self",))
            .select_related("target", "incident")
            .filter(pk=action_id)
            .first()
        )
        if action is None:
            raise DiagnosticsError(f"Remediation {action_id} does not exist.", field="action")
        _check_permission(actor, action.incident, action.force)
        if action.status != RemediationStatus.PREVIEWED:
            raise DiagnosticsError(
                f"This remediation was already executed ({action.get_status_display()}); "
                "preview again.",
                field="action",
            )
        if not action.target.remediation_allowed:
            raise RemediationRefused(
                f"Remediation is no longer allowed on {action.target.name}.", field="target"
            )
        if action.incident is not None and action.incident.status == Status.CLOSED:
            raise DiagnosticsError("A closed incident cannot be changed.", field="incident")
        age = (timezone.now() - action.previewed_at).total_seconds()
        if age > settings.QUELL_REMEDIATION_PREVIEW_TTL_S:
            raise DiagnosticsError(
                f"This preview is {age:.0f} s old (the limit is "
                f"{settings.QUELL_REMEDIATION_PREVIEW_TTL_S} s); preview again.",
                field="action",
            )
        pairs = _confirmed_pairs(action, confirmed)
        action.confirmed = pairs
        action.status = RemediationStatus.EXECUTING
        action.executed_by = user_or_none(actor)
        action.executed_at = timezone.now()
        action.save(update_fields=["confirmed", "status", "executed_by", "executed_at"])
    return action


def remediation_execute(*, action_id: int, confirmed, actor=None) -> RemediationAction:
    """Signal the confirmed backends of a preview (identity re-checked right before each)."""
    action = _claim(action_id=action_id, confirmed=confirmed, actor=actor)
    spec = None
    results: list[dict[str, Any]] = []
    error = ""
    timeouts, confirm_s = _timeouts()
    try:
        spec = action.target.to_connection_spec()
        with b.open_remediation_session(spec, timeouts) as session:
            results = b.signal(
                session,
                action.confirmed,
                kind=action.kind,
                flt=b.BackendFilter.from_dict(action.filters),
                force=action.force,
                confirm_timeout_s=confirm_s,
            )
    except crypto.SecretError as exc:
        error = str(exc)
    except (TargetUnreachable, SessionBroken, psycopg.Error) as exc:
        error = scrub(str(exc), secrets=tuple(spec.secrets() if spec else ()))
    now = timezone.now()
    with transaction.atomic():
        action = RemediationAction.objects.select_for_update(of=("self",)).get(pk=action.pk)
        action.results = results
        action.finished_at = now
        if error:
            action.status = RemediationStatus.FAILED
            action.error = f"Could not reach {action.target.name}: {error}"
            action.summary = action.error
            if action.incident_id:
                events.remediation_failed_event(action, actor=actor)
        else:
            action.summary = events.summary(action, results)
            cancelled = [
                r
                for r in results
                if r.get("action") == b.CANCEL and r["outcome"] in (b.CANCELLED, b.SIGNALLED)
            ]
            if action.kind == RemediationKind.CANCEL_THEN_TERMINATE and cancelled:
                action.status = RemediationStatus.ESCALATION_PENDING
                action.escalate_at = now + datetime.timedelta(seconds=action.grace_s or 0)
                pk, grace = action.pk, action.grace_s or 0
                transaction.on_commit(lambda: _enqueue_escalation(pk, grace))
            else:
                action.status = RemediationStatus.DONE
            if action.incident_id:
                events.remediation_executed_event(action, results=results, actor=actor)
        action.save()
    logger.info("Remediation %s on %s: %s", action.pk, action.target_id, action.summary)
    return action


def _enqueue_escalation(action_id: int, countdown: int) -> None:
    from . import tasks

    # A broker outage parks the task (incidents.dispatch); the action also stays "waiting to
    # terminate" with its escalate_at on record, which remediation_escalations_due finds.
    dispatch(tasks.remediation_escalate, action_id, countdown=countdown)


def remediation_escalate(*, action_id: int) -> RemediationAction | None:
    """After the grace period, terminate the cancelled backends still holding on (once)."""
    with transaction.atomic():
        action = (
            RemediationAction.objects.select_for_update(of=("self",))
            .select_related("target")
            .filter(pk=action_id)
            .first()
        )
        if action is None or action.status != RemediationStatus.ESCALATION_PENDING:
            return None  # unknown, or a duplicate delivery: the first one did it
        action.status = RemediationStatus.EXECUTING
        action.save(update_fields=["status"])
    cancelled = [
        r
        for r in action.results
        if r.get("action") == b.CANCEL and r["outcome"] in (b.CANCELLED, b.SIGNALLED)
    ]
    results: list[dict[str, Any]] = []
    error = ""
    spec = None
    timeouts, confirm_s = _timeouts()
    try:
        spec = action.target.to_connection_spec()
        with b.open_remediation_session(spec, timeouts) as session:
            results = b.escalate(
                session, cancelled, force=action.force, confirm_timeout_s=confirm_s
            )
    except crypto.SecretError as exc:
        error = str(exc)
    except (TargetUnreachable, SessionBroken, psycopg.Error) as exc:
        error = scrub(str(exc), secrets=tuple(spec.secrets() if spec else ()))
    with transaction.atomic():
        action = RemediationAction.objects.select_for_update(of=("self",)).get(pk=action.pk)
        action.escalation_results = results
        action.escalated_at = timezone.now()
        if error:
            action.status = RemediationStatus.FAILED
            action.error = f"Escalation could not reach {action.target.name}: {error}"
            results = [
                {
                    "pid": r["pid"],
                    "backend_start": r["backend_start"],
                    "outcome": b.FAILED,
                    "detail": action.error,
                }
                for r in cancelled
            ]
        else:
            action.status = RemediationStatus.DONE
        escalation = events.summary(action, results, escalation=True)
        action.summary = f"{action.summary}\n{escalation}".strip()
        if action.incident_id:
            events.remediation_escalated_event(action, results=results)
        action.save()
    return action


def remediation_escalations_due(*, now: datetime.datetime | None = None) -> int:
    """Escalate the actions whose grace period ended over a minute ago and whose task never
    came (broker outage, lost message); returns how many were escalated."""
    now = now or timezone.now()
    due = list(
        RemediationAction.objects.filter(
            status=RemediationStatus.ESCALATION_PENDING,
            escalate_at__lt=now - datetime.timedelta(seconds=60),
        )
        .order_by("escalate_at")
        .values_list("pk", flat=True)[:100]
    )
    return sum(1 for pk in due if remediation_escalate(action_id=pk) is not None)
