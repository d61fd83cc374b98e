"""Who may see the incident pages, and the lookups every incident view shares."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from config.kernel.permissions import VIEWER, role_required
from incidents import selectors
from incidents.models import Incident
from incidents.permissions import user_commands_incident
from incidents.services import IncidentError

# Signed in (else to the login page) and at least a viewer (else 403).
viewer_required = role_required(VIEWER)


def require_command(request, incident) -> None:
    """403 unless the user commands this incident (a commander or its Incident Commander)."""
    if not user_commands_incident(request.user, incident):
        raise PermissionDenied(
            "Only a commander or this incident's Incident Commander may do this."
        )


def get_incident(incident_id: int) -> Incident:
    """The incident, or 404."""
    try:
        return selectors.incident_get(incident_id=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


def add_service_error(form, exc: IncidentError) -> None:
    """Show a service's refusal on the form: on its field when the form has it."""
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, str(exc))
