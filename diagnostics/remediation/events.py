"""Remediation's timeline events (remediations and runbooks): one small function per kind of
record the app puts on an incident.

Each builds the message and the data of its event and appends it through incidents' public
`timeline_append`, inside the caller's transaction. The data keys are remediation's own.
"""

from __future__ import annotations

from typing import Any

from config.kernel.actors import user_or_none
from incidents.models import EventKind, TimelineEvent
from incidents.services import timeline_append

from . import backends as b
from .models import IncidentRunbook, IncidentRunbookStep, RemediationAction, RemediationKind

ACTOR_LABEL = "remediation"
RUNBOOKS_LABEL = "runbooks"
# A remediation did something when it cancelled, terminated or signalled at least one session.
DID_SOMETHING = (b.CANCELLED, b.TERMINATED, b.SIGNALLED)


def tally(results: list[dict[str, Any]]) -> dict[str, int]:
    """{outcome: how many backends} of a remediation's results."""
    counts: dict[str, int] = {}
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    return counts


def summary(action: RemediationAction, results, *, escalation: bool = False) -> str:
    """One line on what an execution (or its escalation) did to each backend."""
    counts = tally(results)
    parts = [
        f"{counts[o]} {o}"
        for o in (b.CANCELLED, b.TERMINATED, b.SIGNALLED, b.SKIPPED, b.FAILED)
        if counts.get(o)
    ]
    label = (
        "Escalation (terminate after the grace period)"
        if escalation
        else RemediationKind(action.kind).label
    )
    if not results:
        return f"{label} on {action.target.name}: nothing done."
    # Read by people in status updates ("Actions taken"): name each session by its pid.
    sessions = "; ".join(
        f"pid {r['pid']} {r['outcome']}"
        + (f": {r['detail']}" if r.get("detail") and r["outcome"] != b.CANCELLED else "")
        for r in results
    )
    return f"{label} on {action.target.name}: {', '.join(parts)} ({sessions})."


def _append(incident_id: int, *, kind: str, message: str, actor, label: str, data: dict):
    user = user_or_none(actor)
    return timeline_append(
        incident_id=incident_id,
        kind=kind,
        message=message,
        actor=user,
        actor_label="" if user else label,
        data=data,
    )


def _signalled(action: RemediationAction, *, results, actor, escalation: bool) -> TimelineEvent:
    return _append(
        action.incident_id,
        kind=EventKind.REMEDIATION,
        message=summary(action, results, escalation=escalation),
        actor=actor,
        label=ACTOR_LABEL,
        data={
            "remediation_id": action.pk,
            "target_id": action.target_id,
            "target_name": action.target.name,
            "kind": action.kind,
            "phase": "escalation" if escalation else "execution",
            "filters": action.filters,
            "force": action.force,
            "counts": tally(results),
            "results": results,
        },
    )


def remediation_executed_event(
    action: RemediationAction, *, results: list[dict[str, Any]], actor=None
) -> TimelineEvent:
    """A remediation signalled its confirmed backends: what happened to each."""
    return _signalled(action, results=results, actor=actor, escalation=False)


def remediation_escalated_event(
    action: RemediationAction, *, results: list[dict[str, Any]]
) -> TimelineEvent:
    """After the grace period, the backends still holding on were terminated (by Quell)."""
    return _signalled(action, results=results, actor=None, escalation=True)


def remediation_failed_event(action: RemediationAction, *, actor=None) -> TimelineEvent:
    """A remediation could not reach its target (`action.error` says why)."""
    return _append(
        action.incident_id,
        kind=EventKind.REMEDIATION,
        message=f"{RemediationKind(action.kind).label} on {action.target.name} "
        f"failed: {action.error}",
        actor=actor,
        label=ACTOR_LABEL,
        data={
            "remediation_id": action.pk,
            "target_id": action.target_id,
            "kind": action.kind,
            "error": action.error,
            "confirmed": action.confirmed,
        },
    )


def runbook_started_event(run: IncidentRunbook, *, steps: int, actor=None) -> TimelineEvent:
    """A runbook was started on the incident (its steps copied)."""
    return _append(
        run.incident_id,
        kind=EventKind.RUNBOOK_STEP,
        message=f"Runbook started: {run.title} ({steps} steps)",
        actor=actor,
        label=RUNBOOKS_LABEL,
        data={"runbook_run_id": run.pk, "runbook": run.runbook.key, "phase": "started"},
    )


def runbook_step_event(
    run: IncidentRunbook,
    *,
    step: IncidentRunbookStep,
    done: bool,
    note: str = "",
    finished: int,
    total: int,
    actor=None,
) -> TimelineEvent:
    """A step was ticked (done=True) or unticked, with an optional note; the message says
    when that completed the runbook."""
    verb = "done" if done else "reopened"
    message = f"{run.title}, step {step.position}/{total} {verb}: {step.title}"
    if note:
        message += f" — {note}"
    if finished == total:
        message += " (runbook complete)"
    return _append(
        run.incident_id,
        kind=EventKind.RUNBOOK_STEP,
        message=message,
        actor=actor,
        label=RUNBOOKS_LABEL,
        data={
            "runbook_run_id": run.pk,
            "runbook": run.runbook.key,
            "step_id": step.pk,
            "position": step.position,
            "title": step.title,
            "done": done,
            "note": note,
            "progress": {"done": finished, "total": total},
        },
    )


def changed_something(event: TimelineEvent) -> bool:
    """Whether a remediation or runbook event records an action that changed something: a
    remediation that ended at least one session, a runbook step done. Not a failed remediation,
    one that ended nothing, a runbook started or a step reopened; not other kinds. (The reader
    of these payloads lives with their writer, so no other app depends on their keys.)"""
    data = event.data or {}
    if event.kind == EventKind.REMEDIATION:
        counts = data.get("counts") or {}
        return not data.get("error") and any(counts.get(k) for k in DID_SOMETHING)
    if event.kind == EventKind.RUNBOOK_STEP:
        return bool(data.get("done"))
    return False
