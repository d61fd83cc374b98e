"""Web pages for data integrity: the incident page's panel (htmx partials), a run's page and a
target's checks page. Thin views: permission check, a service or a selector, a template."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import ADMIN, RESPONDER, VIEWER, role_required, user_has_role
from diagnostics.integrity.models import IntegrityPurpose, IntegrityRun
from diagnostics.models import TargetDatabase
from incidents.models import Incident

from ..services import DiagnosticsError
from . import selectors, services, suggest

POLL_SECONDS = 2


def _panel_context(request: HttpRequest, incident: Incident) -> dict:
    blocks = selectors.incident_blocks(incident_id=incident.pk)
    return {
        "incident": incident,
        "blocks": blocks,
        "polling": any(b["latest"] is not None and b["latest"].is_active for b in blocks),
        "poll_seconds": POLL_SECONDS,
        "can_run": user_has_role(request.user, RESPONDER),
        "can_define": user_has_role(request.user, ADMIN),
    }


def _render_panel(request, incident, *, error: str = "", status: int = 200) -> HttpResponse:
    context = _panel_context(request, incident)
    context["error"] = error
    response = render(request, "integrity/_panel_body.html", context, status=status)
    # A run that was started (or has just finished while the panel polled) wrote to the
    # timeline: the incident page refreshes what listens for incidentChanged.
    finished = request.GET.get("polled") and not context["polling"]
    if status == 200 and (request.method == "POST" or finished):
        response["HX-Trigger"] = "incidentChanged"
    return response


@role_required(VIEWER)
@require_GET
def incident_panel(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The panel's body: affected targets' checks, latest results, baseline vs verification."""
    incident = get_object_or_404(Incident, pk=incident_id)
    return _render_panel(request, incident)


@role_required(RESPONDER)
@require_POST
def incident_run(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Run a baseline, a verification or an ad hoc check on the affected targets (or one)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    purpose = request.POST.get("purpose", IntegrityPurpose.ADHOC)
    blocks = selectors.incident_blocks(incident_id=incident.pk)
    wanted = request.POST.get("target")
    if wanted:
        blocks = [b for b in blocks if str(b["target"].pk) == wanted]
    blocks = [b for b in blocks if any(c.enabled for c in b["checks"])]
    errors = []
    if not blocks:
        errors.append("No affected target has enabled integrity checks; define some first.")
    for block in blocks:
        try:
            services.integrity_run_start(
                target_id=block["target"].pk,
                incident_id=incident.pk,
                purpose=purpose,
                requested_by=request.user,
            )
        except DiagnosticsError as exc:
            errors.append(f"{block['target'].name}: {exc}")
    if request.htmx:
        return _render_panel(
            request, incident, error=" ".join(errors), status=400 if errors else 200
        )
    for message in errors:
        messages.error(request, message)
    return redirect(
        request.META.get("HTTP_REFERER") or reverse("incidents:detail", args=[incident.pk])
    )


@role_required(VIEWER)
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's results (counts, samples, the SQL that ran) and its comparison with the
    baseline or any other run of the target (?compare=<id>)."""
    try:
        run = selectors.run_get(run_id=run_id)
    except IntegrityRun.DoesNotExist:
        raise Http404("No such integrity run.") from None
    other = None
    compare_error = ""
    raw = request.GET.get("compare")
    if raw:
        other = IntegrityRun.objects.filter(pk=int(raw) if raw.isdigit() else 0).first()
        if other is None or other.target_id != run.target_id:
            compare_error, other = "Choose another run of the same target.", None
    comparison = None
    if run.status == "succeeded":
        comparison = selectors.run_compare(run, other=other)
    context = {
        "run": run,
        "results": selectors.ordered_results(run.results.all()),
        "comparison": comparison,
        "compare_error": compare_error,
        "other_runs": selectors.run_list(target_id=run.target_id)
        .exclude(pk=run.pk)
        .filter(status="succeeded")[:50],
        "poll_seconds": POLL_SECONDS,
    }
    return render(request, "integrity/run_detail.html", context)


@role_required(VIEWER)
@require_GET
def target_checks(request: HttpRequest, target_id: int) -> HttpResponse:
    """A target's integrity checks and runs; responders see suggestions from its catalog."""
    target = get_object_or_404(TargetDatabase, pk=target_id)
    suggestions, suggest_error = None, ""
    if request.GET.get("suggest") and user_has_role(request.user, RESPONDER):
        try:
            suggestions = suggest.suggestions_for(target)
        except DiagnosticsError as exc:
            suggest_error = str(exc)
    context = {
        "target": target,
        "checks": list(selectors.check_list(target_id=target.pk)),
        "runs": list(selectors.run_list(target_id=target.pk)[:20]),
        "suggestions": suggestions,
        "suggest_error": suggest_error,
        "can_run": user_has_role(request.user, RESPONDER),
        "can_define": user_has_role(request.user, ADMIN),
    }
    return render(request, "integrity/target_checks.html", context)


@role_required(ADMIN)
@require_POST
def target_apply_suggestions(request: HttpRequest, target_id: int) -> HttpResponse:
    """Create the chosen suggested checks (admin)."""
    target = get_object_or_404(TargetDatabase, pk=target_id)
    names = request.POST.getlist("name")
    if not names:
        messages.error(request, "Choose at least one suggestion.")
        return redirect(reverse("integrity:integrity-target", args=[target.pk]) + "?suggest=1")
    try:
        created = suggest.apply_suggestions(target, names=names, actor=request.user)
    except DiagnosticsError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Defined {len(created)} integrity check(s).")
    return redirect("integrity:integrity-target", target_id=target.pk)


@role_required(RESPONDER)
@require_POST
def target_run(request: HttpRequest, target_id: int) -> HttpResponse:
    """Run a target's enabled checks now (ad hoc) and show the run."""
    target = get_object_or_404(TargetDatabase, pk=target_id)
    try:
        run = services.integrity_run_start(target_id=target.pk, requested_by=request.user)
    except DiagnosticsError as exc:
        messages.error(request, str(exc))
        return redirect("integrity:integrity-target", target_id=target.pk)
    return redirect("integrity:integrity-run", run_id=run.pk)
