"""The incident list and the declare form."""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods

from config.kernel.permissions import RESPONDER, role_required, user_has_role
from incidents import affected, registry, selectors, services
from incidents.filters import IncidentListFilter
from incidents.forms import DeclareForm, severity_options
from incidents.listing import SEARCH_COUNT_CAP, OpenFirst
from incidents.services import IncidentError

from .access import add_service_error, viewer_required

PAGE_SIZE = 25


# --- List -------------------------------------------------------------------------------


@require_GET
@viewer_required
def incident_list(request):
    """Incidents, open ones first, filtered and paginated."""
    filterset = selectors.incident_filterset(
        request.GET or None,
        filterset_class=IncidentListFilter,
        targets=registry.target_choices(),
    )
    form = filterset.form
    # Invalid filters are reported on the form and ignored (the others still apply).
    qs = filterset.qs
    data = getattr(form, "cleaned_data", {})
    incidents = OpenFirst(qs, count_cap=SEARCH_COUNT_CAP if data.get("q") else None)
    page = Paginator(incidents, PAGE_SIZE).get_page(request.GET.get("page"))
    for incident in page:
        incident.missing_roles = selectors.incident_missing_roles(incident)
    context = {
        "form": form,
        "page": page,
        "filtered": any(v not in (None, "") for v in data.values()),
        "count_capped": incidents.capped,
        "can_declare": user_has_role(request.user, RESPONDER),
    }
    # Invalid filters are shown on the form and ignored, answered as what they are: a 400.
    status = 400 if form.errors else 200
    if request.htmx and request.htmx.target == "incident-results":
        response = render(
            request, "incidents/partials/incident_results.html", context, status=status
        )
    else:
        response = render(request, "incidents/incident_list.html", context, status=status)
    # Same address, two bodies (fragment for htmx, page otherwise): caches must keep both.
    patch_vary_headers(response, ("HX-Request", "HX-Target"))
    return response


# --- Declare ----------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(RESPONDER)
def incident_declare(request):
    """The declare form; on success, the new incident's page.

    With affected databases (an app registers them: incidents.affected) the incident is
    declared through that app's service, which links each one and starts its run at detection.
    """
    choices = affected.target_choices()
    if request.method == "POST":
        form = DeclareForm(request.POST, target_choices=choices)
    else:
        initial = DeclareForm.initial_from(request.GET, target_choices=choices)
        form = DeclareForm(initial=initial, target_choices=choices)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            target_ids = form.cleaned_data.get("affected_targets") or []
            try:
                if target_ids:
                    incident = affected.declare_with_targets(
                        target_ids=target_ids, actor=request.user, **form.service_kwargs()
                    )
                else:
                    incident = services.incident_declare(
                        actor=request.user, **form.service_kwargs()
                    )
            except IncidentError as exc:
                add_service_error(form, exc)
            else:
                text = f"Incident #{incident.pk} declared. Channel: {incident.channel_name}"
                if target_ids:
                    text += f". Diagnostics started on {len(target_ids)} database(s)."
                messages.success(request, text)
                return redirect("incidents:detail", incident_id=incident.pk)
        status = 400
    return render(
        request,
        "incidents/incident_declare.html",
        {"form": form, "severities": severity_options()},
        status=status,
    )


def incidents_index(request):
    """/incidents/ is the same list, at its canonical address."""
    return redirect(
        reverse("incidents:list") + (f"?{request.GET.urlencode()}" if request.GET else "")
    )
