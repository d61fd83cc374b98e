"""Triage web pages: the incident page's triage panel (htmx partial) and its actions.

Without JavaScript the panel links to the same body as a page of its own, whose forms post
normally and redirect back to it. Permissions as the API: viewers read, responders walk,
commanders and the incident's Incident Commander apply severity.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import RESPONDER, user_has_role
from incidents.permissions import user_commands_incident

from ..models import Incident, Kind
from ..services import IncidentConflict, IncidentError
from ..severity import SEVERITY_DEFINITIONS
from ..views.access import viewer_required
from . import selectors, services

BODY = "incidents/panels/triage/_body.html"
PAGE = "incidents/panels/triage/page.html"


def _incident(incident_id: int) -> Incident:
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise Http404("No such incident.")
    return incident


def _context(request, incident: Incident, *, error: str = "") -> dict:
    walk = selectors.walk_current(incident_id=incident.pk)
    suggestions = selectors.suggestions_for(incident_id=incident.pk)
    state = selectors.walk_state(walk, suggestions=suggestions) if walk else None
    can_walk = user_has_role(request.user, RESPONDER) and incident.status != "closed"
    proposed = (state or {}).get("proposed_severity") or ""
    return {
        "incident": incident,
        "walk": walk,
        "state": state,
        "suggestion_count": len(suggestions),
        "can_walk": can_walk,
        "can_apply_severity": can_walk and user_commands_incident(request.user, incident),
        "proposed_severity_definition": SEVERITY_DEFINITIONS.get(proposed, ""),
        "proposed_kind_label": Kind(state["proposed_kind"]).label
        if state and state["proposed_kind"]
        else "",
        # Loaded into the incident page (htmx): buttons can act on the other panels there.
        "in_panel": bool(request.htmx),
        "history": list(selectors.walk_history(incident_id=incident.pk)) if walk else [],
        "error": error,
    }


def _answer(request, incident: Incident, *, error: str = "", status: int = 200, trigger=""):
    """The panel body for htmx; otherwise back to the triage page (with the error flashed)."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect("incidents:triage", incident_id=incident.pk)
    response = render(request, BODY, _context(request, incident, error=error), status=status)
    if trigger:
        response["HX-Trigger"] = trigger
    return response


@require_GET
@viewer_required
def triage_panel(request, incident_id: int):
    """The panel body (htmx) or the triage page."""
    incident = _incident(incident_id)
    context = _context(request, incident)
    return render(request, BODY if request.htmx else PAGE, context)


def _act(request, incident_id: int, action, *, trigger: str = ""):
    incident = _incident(incident_id)
    if not user_has_role(request.user, RESPONDER):
        raise PermissionDenied("You need the responder role (or higher) to triage.")
    try:
        action(incident)
    except IncidentConflict as exc:
        return _answer(request, incident, error=str(exc), status=409)
    except IncidentError as exc:
        return _answer(request, incident, error=str(exc), status=400)
    incident.refresh_from_db()
    return _answer(request, incident, trigger=trigger)


@require_POST
@viewer_required
def triage_start(request, incident_id: int):
    """Start triage, or restart it (restart=1)."""
    restart = request.POST.get("restart") == "1"
    return _act(
        request,
        incident_id,
        lambda incident: services.triage_walk_start(
            incident_id=incident.pk, actor=request.user, restart=restart
        ),
    )


@require_POST
@viewer_required
def triage_answer(request, incident_id: int):
    """Answer the current question (posted with the question's key, to refuse stale answers)."""
    question = request.POST.get("question", "")
    answer = request.POST.get("answer", "")

    def act(incident):
        if not question or not answer:
            raise IncidentError("Choose an answer.", field="answer")
        suggestion = selectors.suggestions_for(incident_id=incident.pk).get(question)
        services.triage_walk_answer(
            incident_id=incident.pk,
            question=question,
            answer=answer,
            actor=request.user,
            suggestion=suggestion,
        )

    return _act(request, incident_id, act)


@require_POST
@viewer_required
def triage_back(request, incident_id: int):
    """Withdraw the last answer."""
    return _act(
        request,
        incident_id,
        lambda incident: services.triage_walk_back(incident_id=incident.pk, actor=request.user),
    )


@require_POST
@viewer_required
def triage_apply(request, incident_id: int):
    """Apply the outcome: apply=severity, kind or both."""
    what = request.POST.get("apply", "both")
    if what not in ("severity", "kind", "both"):
        what = ""
    severity = what in ("severity", "both")
    kind = what in ("kind", "both")
    incident = _incident(incident_id)
    if severity and not user_commands_incident(request.user, incident):
        raise PermissionDenied(
            "Only a commander or this incident's Incident Commander may change severity."
        )
    return _act(
        request,
        incident_id,
        lambda incident: services.triage_outcome_apply(
            incident_id=incident.pk, actor=request.user, severity=severity, kind=kind
        ),
        trigger="incidentChanged, triageApplied",
    )
