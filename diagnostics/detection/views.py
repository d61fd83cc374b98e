"""Web pages of detection: the incident page's Signals panel (polled while the incident is
open: alerts keep arriving from outside, with no action on the page to refresh it)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from config.kernel.permissions import VIEWER, role_required
from incidents.models import Incident


@role_required(VIEWER)
@require_GET
def incident_signals(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The Signals panel of one incident, as the page shows it."""
    incident = get_object_or_404(Incident, pk=incident_id)
    return render(request, "detection/incident_panel.html", {"incident": incident})
