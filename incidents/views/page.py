"""The incident page: summary, roles, status, timeline and the panels other apps contribute."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import get_template
from django.views.decorators.http import require_GET

from config.kernel.permissions import RESPONDER, user_has_role
from incidents import registry, selectors, services
from incidents.forms import (
    AssessmentForm,
    AssignRoleForm,
    NoteForm,
    SeverityForm,
    TimelineFilterForm,
    TransitionForm,
    severity_options,
)
from incidents.models import EventKind, Incident, ResponderRole, Status, TimelineEvent
from incidents.permissions import grantable_roles, role_relieve_refusal, user_commands_incident

from .access import get_incident, viewer_required

TIMELINE_LIMIT = 200
# How often an open incident's timeline refreshes itself (seconds).
TIMELINE_POLL_SECONDS = 5


def render_panels(request, incident, area: str) -> list[dict]:
    """The registered panels of an area (incidents.registry), rendered with {incident, user}.
    Their templates exist: the system check quell.E101 refuses to start otherwise."""
    return [
        {
            "key": panel.key,
            "title": panel.title,
            "html": get_template(panel.template).render(
                {"incident": incident, "user": request.user}, request
            ),
            "refresh": panel.refresh,
        }
        for panel in registry.panels(area)
    ]


def timeline_context(request, incident) -> dict:
    """The timeline's events and filter, as the request (or the action's post) asks."""
    # Actions post the filter along (hx-include), so the timeline they send back keeps it.
    data = request.GET if request.method == "GET" else request.POST
    kinds = TimelineFilterForm({"event": data.getlist("event")})
    chosen = kinds.cleaned_data["event"] if kinds.is_valid() else []
    qs = selectors.timeline_for(incident_id=incident.pk, kinds=chosen or None, newest_first=True)
    events = list(qs[: TIMELINE_LIMIT + 1])
    return {
        "events": events[:TIMELINE_LIMIT],
        "truncated": len(events) > TIMELINE_LIMIT,
        "timeline_kinds": chosen,
        "timeline_filter": kinds,
        "timeline_query": "&".join(f"event={k}" for k in chosen),
        "poll_seconds": TIMELINE_POLL_SECONDS,
        "latest_event_id": latest_event_id(incident.pk),
    }


def _postmortem_closes() -> bool:
    # With the postmortems app, an incident closes when its postmortem is published or waived
    # (DESIGN.md): the page leaves closing to that panel instead of offering a bare "Close".
    return registry.incidents_closed_by_an_app()


def _transition_buttons(status: str, allowed) -> list[dict]:
    labels = {
        Status.INVESTIGATING: "Reopen" if status == Status.RESOLVED else "Back to investigating",
        Status.IDENTIFIED: "Cause identified",
        Status.MONITORING: "Mitigated: monitoring",
        Status.RESOLVED: "Resolve",
        Status.CLOSED: "Close",
    }
    return [
        {
            "value": s,
            "label": labels[s],
            "css": "ok" if s == Status.RESOLVED else "secondary",
        }
        for s in allowed
        if not (s == Status.CLOSED and _postmortem_closes())
    ]


def _since_detection(incident) -> dict:
    def seconds(moment):
        return (moment - incident.detected_at).total_seconds() if moment else None

    return {
        "acknowledge": seconds(incident.acknowledged_at),
        "identify": seconds(incident.identified_at),
        "mitigate": seconds(incident.mitigated_at),
        "resolve": seconds(incident.resolved_at),
    }


def _lifecycle_done(incident) -> set[str]:
    done = set()
    if incident.status != Status.INVESTIGATING:
        done.add(Status.INVESTIGATING)
    for status, stamp in (
        (Status.IDENTIFIED, incident.identified_at),
        (Status.MONITORING, incident.mitigated_at),
        (Status.RESOLVED, incident.resolved_at),
    ):
        if stamp:
            done.add(status)
    return {str(s) for s in done}


def detail_context(request, incident, **forms) -> dict:
    """Everything the incident body shows; forms passed in (with their errors) replace blanks."""
    can_respond = user_has_role(request.user, RESPONDER) and incident.status != Status.CLOSED
    can_command = user_commands_incident(request.user, incident)
    allowed = services.allowed_transitions(incident.status)
    missing = selectors.incident_missing_roles(incident)
    required = services.required_roles(incident.severity)
    # Only the roles this user may grant are offered, and Relieve only where they may use it.
    may_grant = grantable_roles(request.user, incident, ResponderRole.values) if can_respond else []
    relievable = {
        a.pk
        for a in incident.active_assignments
        if can_respond
        and not role_relieve_refusal(request.user, incident, role=a.role, holder_id=a.user_id)
    }
    context = {
        "incident": incident,
        "targets": registry.targets_for_incident(incident.pk),
        "active_assignments": incident.active_assignments,
        "history": selectors.assignment_history(incident_id=incident.pk),
        "missing_roles": [ResponderRole(r).label for r in missing],
        "required_roles": [ResponderRole(r).label for r in required],
        "can_respond": can_respond,
        # Notes stay open after closing: a correction or a late finding is a new event.
        "can_note": user_has_role(request.user, RESPONDER),
        "can_command": can_command and bool(allowed),
        "can_regrade": can_command and incident.status != Status.CLOSED,
        "transitions": _transition_buttons(incident.status, allowed),
        "closes_with_postmortem": incident.status == Status.RESOLVED and _postmortem_closes(),
        "lifecycle": Status.choices,
        "lifecycle_done": _lifecycle_done(incident),
        "times": _since_detection(incident),
        "severities": severity_options(),
        "event_kinds": EventKind.choices,
        "assessment_form": forms.get("assessment_form")
        or AssessmentForm(initial=AssessmentForm.initial_for(incident)),
        "transition_form": forms.get("transition_form")
        or TransitionForm(allowed=allowed, initial={"expected_status": incident.status}),
        "severity_form": forms.get("severity_form")
        or SeverityForm(initial={"severity": incident.severity}),
        "assign_form": forms.get("assign_form") or AssignRoleForm(roles=may_grant),
        "can_assign": bool(may_grant),
        "relievable": relievable,
        "note_form": forms.get("note_form") or NoteForm(),
        "conflict": forms.get("conflict"),
        "flash": forms.get("flash"),
        "open_details": "assessment_form" in forms,
    }
    context["top_panels"] = render_panels(request, incident, registry.TOP)
    context.update(timeline_context(request, incident))
    return context


@require_GET
@viewer_required
def incident_detail(request, incident_id: int):
    """The incident page: summary, assessment, roles, status, timeline and the apps' panels."""
    incident = get_incident(incident_id)
    context = detail_context(request, incident)
    context["app_panels"] = render_panels(request, incident, registry.APP)
    context["feature_panels"] = render_panels(request, incident, registry.FEATURE)
    return render(request, "incidents/incident_detail.html", context)


@require_GET
@viewer_required
def incident_timeline(request, incident_id: int):
    """The timeline fragment (htmx polls it while the incident is open).

    A poll says which event it already shows (`after`); when nothing newer exists the answer
    is 204 and htmx keeps the page as it is, so an idle incident costs one indexed query.
    """
    incident = Incident.objects.filter(pk=incident_id).only("id", "status").first()
    if incident is None:
        raise Http404("No such incident.")
    polling = bool(request.htmx and request.GET.get("poll"))
    after = request.GET.get("after", "")
    unchanged = after.isdigit() and latest_event_id(incident.pk) == int(after)
    if polling and incident.is_open and unchanged:
        return HttpResponse(status=204)
    context = {"incident": incident, **timeline_context(request, incident)}
    response = render(request, "incidents/partials/timeline.html", context)
    if polling and not incident.is_open:
        # htmx stops polling on 286: a resolved or closed incident has nothing more coming.
        response.status_code = 286
    return response


def latest_event_id(incident_id: int) -> int:
    """The newest timeline event's id (0 when none): what a poll compares with."""
    latest = (
        TimelineEvent.objects.filter(incident_id=incident_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return latest or 0


def after_action(request, incident_id: int, *, message: str = "", status: int = 200, **forms):
    """Answer an action: the refreshed body fragment for htmx, else redirect or full page."""
    ok = status < 400
    if ok and not request.htmx:
        if message:
            messages.success(request, message)
        return redirect("incidents:detail", incident_id=incident_id)
    incident = get_incident(incident_id)
    context = detail_context(request, incident, flash=message if ok else "", **forms)
    if request.htmx:
        response = render(request, "incidents/partials/incident_body.html", context, status=status)
        if ok:
            response["HX-Trigger"] = "incidentChanged"
        return response
    context["app_panels"] = render_panels(request, incident, registry.APP)
    context["feature_panels"] = render_panels(request, incident, registry.FEATURE)
    return render(request, "incidents/incident_detail.html", context, status=status)
