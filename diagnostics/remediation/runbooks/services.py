"""Runbook writes: start a runbook on an incident, tick or untick a step (onto the timeline).

Responders work runbooks (like notes: the response team does the steps). Every change locks
the started runbook's row and writes an EventKind.RUNBOOK_STEP event in the same transaction.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config.kernel.actors import user_or_none
from diagnostics.remediation import events
from diagnostics.remediation.models import IncidentRunbook, IncidentRunbookStep, Runbook
from diagnostics.services import DiagnosticsError
from incidents.models import Incident, Status

NOTE_MAX = 2000


def _open_incident(incident_id: int) -> Incident:
    incident = Incident.objects.select_for_update().filter(pk=incident_id).first()
    if incident is None:
        raise DiagnosticsError(f"Incident {incident_id} does not exist.", field="incident")
    if incident.status == Status.CLOSED:
        raise DiagnosticsError("A closed incident cannot be changed.", field="incident")
    return incident


def _find_runbook(runbook) -> Runbook:
    """A runbook by id or key."""
    qs = Runbook.objects.all()
    found = None
    if isinstance(runbook, int) or (isinstance(runbook, str) and runbook.isdigit()):
        found = qs.filter(pk=int(runbook)).first()
    if found is None and isinstance(runbook, str) and runbook:
        found = qs.filter(key=runbook).first()
    if found is None:
        raise DiagnosticsError(f"No runbook {runbook!r}.", field="runbook")
    if not found.active:
        raise DiagnosticsError(f"The runbook {found.title!r} is inactive.", field="runbook")
    return found


@transaction.atomic
def runbook_start(*, incident_id: int, runbook, actor=None) -> tuple[IncidentRunbook, bool]:
    """Start a runbook on an incident (copying its steps); returns (run, created)."""
    incident = _open_incident(incident_id)
    definition = _find_runbook(runbook)
    existing = IncidentRunbook.objects.filter(incident=incident, runbook=definition).first()
    if existing is not None:
        return existing, False
    steps = list(definition.steps.order_by("position", "id"))
    if not steps:
        raise DiagnosticsError(f"The runbook {definition.title!r} has no steps.", field="runbook")
    run = IncidentRunbook.objects.create(
        incident=incident,
        runbook=definition,
        title=definition.title,
        started_by=user_or_none(actor),
        started_at=timezone.now(),
    )
    IncidentRunbookStep.objects.bulk_create(
        IncidentRunbookStep(
            run=run, position=i, title=step.title, detail=step.detail, action=step.action
        )
        for i, step in enumerate(steps, start=1)
    )
    events.runbook_started_event(run, steps=len(steps), actor=actor)
    return run, True


@transaction.atomic
def runbook_step_set(
    *, incident_id: int, run_id: int, step_id: int, done: bool, note: str = "", actor=None
) -> IncidentRunbookStep:
    """Tick (done=True) or untick a step, with an optional note, onto the timeline."""
    _open_incident(incident_id)
    run = (
        IncidentRunbook.objects.select_for_update()
        .filter(pk=run_id, incident_id=incident_id)
        .first()
    )
    if run is None:
        raise DiagnosticsError(
            f"Runbook {run_id} was not started on incident #{incident_id}.", field="run"
        )
    step = run.steps.filter(pk=step_id).first()
    if step is None:
        raise DiagnosticsError(f"Step {step_id} is not a step of this runbook.", field="step")
    note = (note or "").strip()
    if len(note) > NOTE_MAX:
        raise DiagnosticsError(f"A note is at most {NOTE_MAX} characters.", field="note")
    done = bool(done)
    if step.done == done and not note:
        return step  # nothing changes: a double click writes nothing
    now = timezone.now()
    step.done = done
    step.done_by = user_or_none(actor) if done else None
    step.done_at = now if done else None
    if note:
        step.note = note
    step.save(update_fields=["done", "done_by", "done_at", "note"])
    steps = list(run.steps.all())
    finished = sum(1 for s in steps if s.done)
    total = len(steps)
    complete = finished == total
    run.completed_at = (run.completed_at or now) if complete else None
    run.save(update_fields=["completed_at"])
    events.runbook_step_event(
        run, step=step, done=done, note=note, finished=finished, total=total, actor=actor
    )
    return step
