"""The incident page's Runbooks panel (htmx partials): start a runbook, tick steps with notes."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import RESPONDER, VIEWER, role_required, user_has_role
from diagnostics.remediation.runbooks import selectors, services
from diagnostics.services import DiagnosticsError
from incidents.models import Incident


def _context(request: HttpRequest, incident: Incident, **extra) -> dict:
    runs = list(selectors.incident_runbooks(incident_id=incident.pk))
    started = {run.runbook_id for run in runs}
    blocks = []
    for run in runs:
        done, total = run.progress
        blocks.append({"run": run, "steps": list(run.steps.all()), "done": done, "total": total})
    context = {
        "incident": incident,
        "blocks": blocks,
        "available": [rb for rb in selectors.runbook_list() if rb.pk not in started],
        "can_edit": user_has_role(request.user, RESPONDER) and incident.status != "closed",
        "error": "",
    }
    context.update(extra)
    return context


def _render(request, incident, *, status: int = 200, **extra) -> HttpResponse:
    response = render(
        request,
        "remediation/_runbooks_body.html",
        _context(request, incident, **extra),
        status=status,
    )
    if status == 200 and request.method == "POST":
        response["HX-Trigger"] = "incidentChanged"  # the timeline shows the new event
    return response


@role_required(VIEWER)
@require_GET
def runbooks_panel(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Started runbooks with their progress; the ones that can still be started."""
    incident = get_object_or_404(Incident, pk=incident_id)
    return _render(request, incident)


@role_required(RESPONDER)
@require_POST
def runbook_start(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Start the posted runbook on the incident."""
    incident = get_object_or_404(Incident, pk=incident_id)
    try:
        services.runbook_start(
            incident_id=incident.pk, runbook=request.POST.get("runbook", ""), actor=request.user
        )
    except DiagnosticsError as exc:
        return _render(request, incident, status=400, error=str(exc))
    return _render(request, incident)


@role_required(RESPONDER)
@require_POST
def runbook_step(request: HttpRequest, incident_id: int, run_id: int, step_id: int) -> HttpResponse:
    """Tick (done=1) or untick (done=0) a step, with an optional note."""
    incident = get_object_or_404(Incident, pk=incident_id)
    try:
        services.runbook_step_set(
            incident_id=incident.pk,
            run_id=run_id,
            step_id=step_id,
            done=request.POST.get("done") == "1",
            note=request.POST.get("note", ""),
            actor=request.user,
        )
    except DiagnosticsError as exc:
        return _render(request, incident, status=400, error=str(exc))
    return _render(request, incident)
