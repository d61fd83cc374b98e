"""What the incident page posts: details, status, severity, acknowledgement, roles, notes.

Each answers through `page.after_action`: the refreshed body for htmx, else a redirect back.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.views.decorators.http import require_POST

from config.kernel.permissions import RESPONDER, role_required
from incidents import services
from incidents.forms import AssessmentForm, AssignRoleForm, NoteForm, SeverityForm, TransitionForm
from incidents.models import EventKind, ResponderAssignment, Status
from incidents.names import display_name
from incidents.services import IncidentConflict, IncidentError

from .access import add_service_error, get_incident, require_command, viewer_required
from .page import after_action


@require_POST
@role_required(RESPONDER)
def incident_edit(request, incident_id: int):
    """Summary and assessment -> incident_update."""
    incident = get_incident(incident_id)
    form = AssessmentForm(request.POST)
    if form.is_valid():
        changes = form.changes(incident)
        try:
            services.incident_update(incident_id=incident.pk, actor=request.user, **changes)
        except IncidentError as exc:
            add_service_error(form, exc)
        else:
            text = "Details saved." if changes else "Nothing changed."
            return after_action(request, incident.pk, message=text)
    return after_action(request, incident.pk, status=400, assessment_form=form)


@require_POST
@viewer_required
def incident_transition(request, incident_id: int):
    """Status change; a change made meanwhile by someone else is a conflict (409)."""
    incident = get_incident(incident_id)
    require_command(request, incident)
    form = TransitionForm(request.POST, allowed=Status.values)
    if not form.is_valid():
        return after_action(request, incident.pk, status=400, transition_form=form)
    to_status = form.cleaned_data["to_status"]
    try:
        services.incident_transition(
            incident_id=incident.pk,
            to_status=to_status,
            actor=request.user,
            reason=form.cleaned_data["reason"],
            expected_status=form.cleaned_data["expected_status"],
        )
    except IncidentConflict as exc:
        return after_action(request, incident.pk, status=409, conflict=str(exc))
    except IncidentError as exc:
        add_service_error(form, exc)
        return after_action(request, incident.pk, status=400, transition_form=form)
    return after_action(
        request, incident.pk, message=f"Status is now {Status(to_status).label.lower()}."
    )


@require_POST
@viewer_required
def incident_severity(request, incident_id: int):
    """Re-grade the incident."""
    incident = get_incident(incident_id)
    require_command(request, incident)
    form = SeverityForm(request.POST)
    if form.is_valid():
        try:
            services.incident_change_severity(
                incident_id=incident.pk,
                severity=form.cleaned_data["severity"],
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except IncidentError as exc:
            add_service_error(form, exc)
        else:
            return after_action(
                request, incident.pk, message=f"Severity is now {form.cleaned_data['severity']}."
            )
    return after_action(request, incident.pk, status=400, severity_form=form)


@require_POST
@role_required(RESPONDER)
def incident_acknowledge(request, incident_id: int):
    """Stamp the acknowledgement."""
    incident = get_incident(incident_id)
    services.incident_acknowledge(incident_id=incident.pk, actor=request.user)
    return after_action(request, incident.pk, message="Acknowledged.")


@require_POST
@role_required(RESPONDER)
def role_assign(request, incident_id: int):
    """Give someone a role (its current holder is relieved); who may grant what: the service."""
    incident = get_incident(incident_id)
    form = AssignRoleForm(request.POST)
    if form.is_valid():
        try:
            assignment = services.role_assign(
                incident_id=incident.pk,
                role=form.cleaned_data["role"],
                role_name=form.cleaned_data["role_name"],
                user=form.cleaned_data["user"],
                actor=request.user,
            )
        except PermissionDenied as exc:
            form.add_error("role", str(exc))
            return after_action(request, incident.pk, status=403, assign_form=form)
        except IncidentConflict as exc:
            return after_action(request, incident.pk, status=409, conflict=str(exc))
        except IncidentError as exc:
            add_service_error(form, exc)
        else:
            return after_action(
                request,
                incident.pk,
                message=f"{display_name(assignment.user)} is now {assignment.role_label}.",
            )
    return after_action(request, incident.pk, status=400, assign_form=form)


@require_POST
@role_required(RESPONDER)
def role_relieve(request, incident_id: int, assignment_id: int):
    """End an assignment."""
    incident = get_incident(incident_id)
    if not ResponderAssignment.objects.filter(pk=assignment_id, incident_id=incident.pk).exists():
        raise Http404("No such assignment on this incident.")
    try:
        assignment = services.role_relieve(assignment_id=assignment_id, actor=request.user)
    except PermissionDenied as exc:
        return after_action(request, incident.pk, status=403, conflict=str(exc))
    except IncidentError as exc:
        return after_action(request, incident.pk, status=400, conflict=str(exc))
    return after_action(
        request,
        incident.pk,
        message=f"{assignment.user.get_username()} relieved as {assignment.role_label}.",
    )


@require_POST
@role_required(RESPONDER)
def incident_note(request, incident_id: int):
    """A note on the timeline."""
    incident = get_incident(incident_id)
    form = NoteForm(request.POST)
    if form.is_valid():
        try:
            services.timeline_append(
                incident_id=incident.pk,
                kind=EventKind.NOTE,
                message=form.cleaned_data["message"],
                actor=request.user,
            )
        except IncidentError as exc:
            add_service_error(form, exc)
        else:
            return after_action(request, incident.pk, message="Note added.")
    return after_action(request, incident.pk, status=400, note_form=form)
