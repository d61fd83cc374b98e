"""Web pages: the incident page's diagnostics panel (htmx partials) and a run's results page.

Thin views: permission check, a service or a selector, a template. Reading never touches a
target database.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import RESPONDER, VIEWER, role_required, user_has_role
from incidents.models import EventKind, Incident, TimelineEvent

from . import selectors, services
from .models import DiagnosticRun, TargetDatabase

POLL_SECONDS = 2


def _target_block(incident: Incident, link) -> dict:
    """What the panel shows for one affected target: latest run, its results, the comparison
    between the run at detection and the latest one."""
    run = selectors.latest_run(target_id=link.target_id, incident_id=incident.pk)
    results = list(run.results.order_by("id")) if run else []
    first = (
        DiagnosticRun.objects.filter(
            target_id=link.target_id, incident=incident, status="succeeded"
        )
        .order_by("queued_at", "id")
        .first()
    )
    comparison = None
    if run and first and run.status == "succeeded" and first.pk != run.pk:
        comparison = selectors.run_compare(base_run_id=first.pk, head_run_id=run.pk)
    return {
        "link": link,
        "target": link.target,
        "run": run,
        "results": results,
        "notable": selectors.notable_results(results),
        "connection_status": selectors.connection_status(run, results) if run else "",
        "comparison": comparison,
    }


def _panel_context(request: HttpRequest, incident: Incident) -> dict:
    links = list(selectors.incident_targets(incident_id=incident.pk))
    blocks = [_target_block(incident, link) for link in links]
    linked = {link.target_id for link in links}
    return {
        "incident": incident,
        "blocks": blocks,
        "polling": any(b["run"] is not None and b["run"].is_active for b in blocks),
        "poll_seconds": POLL_SECONDS,
        "can_run": user_has_role(request.user, RESPONDER) and incident.is_open,
        "can_link": user_has_role(request.user, RESPONDER) and incident.status != "closed",
        "fix_incident": incident.pk
        if incident.is_open and user_has_role(request.user, RESPONDER)
        else None,
        "available_targets": [
            t for t in TargetDatabase.objects.order_by("name") if t.pk not in linked
        ],
    }


def _render_panel(request: HttpRequest, incident: Incident, *, status: int = 200) -> HttpResponse:
    return render(
        request, "diagnostics/_panel.html", _panel_context(request, incident), status=status
    )


def _after_post(request: HttpRequest, incident: Incident) -> HttpResponse:
    if request.htmx:
        response = _render_panel(request, incident)
        # What matters (top of the page) and the timeline follow a new run or target.
        response["HX-Trigger"] = "incidentChanged"
        return response
    # Without JavaScript: back to where the form was, else to the panel itself.
    back = request.META.get("HTTP_REFERER") or reverse(
        "diagnostics:incident-panel", kwargs={"incident_id": incident.pk}
    )
    return redirect(back)


def _error(request: HttpRequest, incident: Incident, message: str) -> HttpResponse:
    if request.htmx:
        context = _panel_context(request, incident)
        context["error"] = message
        return render(request, "diagnostics/_panel.html", context, status=400)
    messages.error(request, message)
    return _after_post(request, incident)


@role_required(VIEWER)
@require_GET
def incident_panel(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The panel's body: affected targets, their latest run and results (polled while active)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    return _render_panel(request, incident)


WHAT_MATTERS_PER_TARGET = 3


def _what_matters(incident: Incident, link) -> dict:
    """For one affected database: its latest run and the worst of its results (blocking
    chains first: their root blocker is what a responder acts on)."""
    run = selectors.latest_run(target_id=link.target_id, incident_id=incident.pk)
    results = list(run.results.order_by("id")) if run else []
    # Worst first; among equals a blocking chain first (its root is the one to act on).
    notable = sorted(
        selectors.notable_results(results),
        key=lambda r: (selectors.NOTABLE_ORDER[r.status], r.key != "blocking_locks", r.id),
    )
    chain = next((r for r in notable if r.key == "blocking_locks" and r.findings), None)
    root = None
    if chain is not None:
        root = next((f for f in chain.findings if f.get("worst")), None)
    # A remediation after the run (a kind, a column: no other app's payload is read) means the
    # findings may be gone: say so rather than keep naming a session that was ended.
    acted_since = bool(
        run
        and run.finished_at
        and TimelineEvent.objects.filter(
            incident=incident, kind=EventKind.REMEDIATION, occurred_at__gt=run.finished_at
        ).exists()
    )
    return {
        "target": link.target,
        "run": run,
        "acted_since": acted_since,
        "worst": notable[:WHAT_MATTERS_PER_TARGET],
        "more": max(0, len(notable) - WHAT_MATTERS_PER_TARGET),
        "chain": chain,
        "root": root,
    }


@role_required(VIEWER)
@require_GET
def incident_what_matters(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The top of the incident page: per affected database, the worst findings of its latest
    run and the root blocker (polled while a run is under way)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    blocks = [
        _what_matters(incident, link)
        for link in selectors.incident_targets(incident_id=incident.pk)
    ]
    return render(
        request,
        "diagnostics/_what_matters.html",
        {
            "incident": incident,
            "blocks": blocks,
            "polling": any(b["run"] is not None and b["run"].is_active for b in blocks),
            "poll_seconds": POLL_SECONDS,
            # Viewers read the findings; the fix links are for responders (the remediation
            # panel then says whether this one may act: commanders, IC, Technical Lead).
            "fix_incident": incident.pk
            if incident.is_open and user_has_role(request.user, RESPONDER)
            else None,
            "can_run": user_has_role(request.user, RESPONDER) and incident.is_open,
        },
    )


@role_required(RESPONDER)
@require_POST
def incident_run(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Run diagnostics on every affected target (or the one posted as target)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    if not incident.is_open:
        return _error(request, incident, "Diagnostics run on open incidents only.")
    links = list(selectors.incident_targets(incident_id=incident.pk))
    wanted = request.POST.get("target")
    if wanted:
        links = [link for link in links if str(link.target_id) == wanted]
    if not links:
        return _error(request, incident, "Add an affected target first.")
    errors = []
    for link in links:
        try:
            services.diagnostic_run_start(
                target_id=link.target_id,
                incident_id=incident.pk,
                trigger="manual",
                requested_by=request.user,
            )
        except services.DiagnosticsError as exc:
            errors.append(str(exc))
    if errors:
        return _error(request, incident, " ".join(errors))
    return _after_post(request, incident)


@role_required(RESPONDER)
@require_POST
def incident_target_add(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Link an affected target (which starts a run on an open incident)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    try:
        target_id = int(request.POST.get("target", ""))
    except ValueError:
        return _error(request, incident, "Choose a target.")
    try:
        services.incident_target_add(
            incident_id=incident.pk, target_id=target_id, actor=request.user
        )
    except services.DiagnosticsError as exc:
        return _error(request, incident, str(exc))
    return _after_post(request, incident)


@role_required(RESPONDER)
@require_POST
def incident_target_remove(request: HttpRequest, incident_id: int, target_id: int) -> HttpResponse:
    """Unlink an affected target (its runs stay on record)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    try:
        services.incident_target_remove(
            incident_id=incident.pk, target_id=target_id, actor=request.user
        )
    except services.DiagnosticsError as exc:
        return _error(request, incident, str(exc))
    return _after_post(request, incident)


@role_required(VIEWER)
@require_GET
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    """A run's results page, with an optional comparison against another run of the target."""
    try:
        run = selectors.run_get(run_id=run_id)
    except DiagnosticRun.DoesNotExist:
        raise Http404("No such diagnostic run.") from None
    results = list(run.results.all())
    context = {
        "run": run,
        "results": results,
        "notable": selectors.notable_results(results),
        "connection_status": selectors.connection_status(run, results),
        "poll_seconds": POLL_SECONDS,
        "other_runs": selectors.run_list(filters={"target_id": run.target_id})
        .exclude(pk=run.pk)
        .filter(status="succeeded")[:50],
        "comparison": None,
        "compare_error": "",
        # Findings offer their fix (terminate, cancel) on the incident the run belongs to while
        # it is open; a critical run without one offers to declare it.
        "fix_incident": run.incident_id
        if run.incident and run.incident.is_open and user_has_role(request.user, RESPONDER)
        else None,
        "can_declare": user_has_role(request.user, RESPONDER),
    }
    compare_with = request.GET.get("compare")
    if compare_with:
        try:
            context["comparison"] = selectors.run_compare(
                base_run_id=int(compare_with), head_run_id=run.pk
            )
        except (ValueError, services.DiagnosticsError) as exc:
            context["compare_error"] = (
                str(exc) if isinstance(exc, services.DiagnosticsError) else "Not a run id."
            )
    template = "diagnostics/_run_body.html" if request.htmx else "diagnostics/run_detail.html"
    return render(request, template, context)


@role_required(VIEWER)
@require_GET
def target_runs(request: HttpRequest, target_id: int) -> HttpResponse:
    """A target's run history (links to each run's page)."""
    target = get_object_or_404(TargetDatabase, pk=target_id)
    runs = selectors.run_list(filters={"target_id": target.pk})[:100]
    return render(request, "diagnostics/target_runs.html", {"target": target, "runs": runs})


@role_required(VIEWER)
@require_GET
def target_list(request: HttpRequest) -> HttpResponse:
    """Every target database with its latest run; responders run diagnostics or test it."""
    return render(
        request,
        "diagnostics/target_list.html",
        {
            "targets": selectors.target_overview(),
            "can_run": user_has_role(request.user, RESPONDER),
            "probe": request.session.pop("quell_diag_probe", None),
        },
    )


@role_required(RESPONDER)
@require_POST
def target_run(request: HttpRequest, target_id: int) -> HttpResponse:
    """Run every check on one target now, then show its run page."""
    target = get_object_or_404(TargetDatabase, pk=target_id)
    try:
        run = services.diagnostic_run_start(
            target_id=target.pk, trigger="manual", requested_by=request.user
        )
    except services.DiagnosticsError as exc:
        messages.error(request, str(exc))
        return redirect("diagnostics:target-list")
    return redirect("diagnostics:run-detail", run_id=run.pk)


@role_required(RESPONDER)
@require_POST
def target_test_connection(request: HttpRequest, target_id: int) -> HttpResponse:
    """Probe one target and show what it found on the targets page."""
    target = get_object_or_404(TargetDatabase, pk=target_id)
    result = services.target_test_connection(target_id=target.pk)
    # Kept for one display (post/redirect/get); the probe result never holds a credential.
    request.session["quell_diag_probe"] = {
        "target": target.name,
        "reachable": bool(result.get("reachable")),
        "latency_ms": result.get("latency_ms"),
        "server_version": result.get("server_version"),
        "in_recovery": result.get("in_recovery"),
        "platform": result.get("platform"),
        "missing": result.get("missing") or [],
        "warnings": result.get("warnings") or [],
        "error": result.get("error", ""),
    }
    return redirect("diagnostics:target-list")
