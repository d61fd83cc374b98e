"""Responder web pages: incident list, declare, incident page and its actions, metrics.

Views stay thin: forms validate, `incidents.services` write, `incidents.selectors` (and the
guarded reads in `incidents.related`) read. Permissions match the API (incidents.permissions):
viewers read, responders act, commanders and the incident's own Incident Commander change
status and severity. A forbidden action is not offered on the page and is refused here (403).

Actions post with htmx and get back the incident's body fragment (HX-Trigger: incidentChanged
lets other panels refresh); without JavaScript they post normally and are redirected back.
"""

from __future__ import annotations

import hmac
import logging
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import select_template
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from config.kernel.permissions import RESPONDER, VIEWER, require_role, user_has_role
from incidents.permissions import grantable_roles, role_relieve_refusal, user_commands_incident

from . import charts, metrics, related, selectors, services
from .filters import IncidentListFilter
from .forms import (
    AssessmentForm,
    AssignRoleForm,
    DeclareForm,
    NoteForm,
    SeverityForm,
    TimelineFilterForm,
    TransitionForm,
    severity_options,
)
from .listing import SEARCH_COUNT_CAP, OpenFirst
from .models import (
    EventKind,
    Incident,
    ResponderAssignment,
    ResponderRole,
    Status,
    TimelineEvent,
)
from .names import display_name
from .services import IncidentConflict, IncidentError
from .severity import Severity
from .templatetags.incident_web import duration

logger = logging.getLogger(__name__)

PAGE_SIZE = 25
TIMELINE_LIMIT = 200
# How often an open incident's timeline refreshes itself (seconds).
TIMELINE_POLL_SECONDS = 5

# Panels other apps contribute to the incident page: the first template found is rendered with
# {incident, request, user}; a panel whose template does not exist is left out.
APP_PANELS = (
    ("diagnostics", "Diagnostics", ("diagnostics/incident_panel.html",)),
    ("comms", "Communications", ("comms/incident_panel.html",)),
    ("postmortems", "Postmortem", ("postmortems/incident_panel.html",)),
)

FEATURE_PANELS = (
    (
        "triage",
        "Triage",
        (
            "incidents/panels/triage.html",
            "incidents/triage_panel.html",
            "triage/incident_panel.html",
        ),
    ),
    (
        "remediation",
        "Remediation",
        ("incidents/panels/remediation.html", "remediation/remediation_panel.html"),
    ),
    (
        "runbooks",
        "Runbooks",
        ("incidents/panels/runbooks.html", "remediation/runbooks_panel.html"),
    ),
    (
        "integrity",
        "Data integrity",
        ("incidents/panels/integrity.html", "integrity/panel.html"),
    ),
)


def viewer_required(view):
    """Signed in (else to the login page) and at least a viewer (else 403)."""

    @login_required
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not user_has_role(request.user, VIEWER):
            raise PermissionDenied("You need the viewer role (or higher) to see incidents.")
        return view(request, *args, **kwargs)

    return wrapped


def _require_command(request, incident) -> None:
    if not user_commands_incident(request.user, incident):
        raise PermissionDenied(
            "Only a commander or this incident's Incident Commander may do this."
        )


def _get_incident(incident_id: int) -> Incident:
    try:
        return selectors.incident_get(incident_id=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


# --- List -------------------------------------------------------------------------------


@require_GET
@viewer_required
def incident_list(request):
    """Incidents, open ones first, filtered and paginated."""
    filterset = selectors.incident_filterset(
        request.GET or None,
        filterset_class=IncidentListFilter,
        targets=related.target_choices(),
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
@viewer_required
def incident_declare(request):
    """The declare form; on success, the new incident's page."""
    require_role(request.user, RESPONDER)
    form = DeclareForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                incident = services.incident_declare(actor=request.user, **form.cleaned_data)
            except IncidentError as exc:
                _add_service_error(form, exc)
            else:
                messages.success(
                    request, f"Incident #{incident.pk} declared. Channel: {incident.channel_name}"
                )
                return redirect("incidents:detail", incident_id=incident.pk)
        status = 400
    return render(
        request,
        "incidents/incident_declare.html",
        {"form": form, "severities": severity_options()},
        status=status,
    )


def _add_service_error(form, exc: IncidentError) -> None:
    field = exc.field if exc.field in form.fields else None
    form.add_error(field, str(exc))


# --- Incident page ----------------------------------------------------------------------


# Panels re-read after an action on this page (a resolve opens the postmortem draft). Panels
# where people type (comms' composer) are not: re-rendering them would lose what was typed.
REFRESH_ON_CHANGE = {"postmortems"}


def _render_panels(request, incident, specs) -> list[dict]:
    panels = []
    for key, title, names in specs:
        try:
            template = select_template(list(names))
        except TemplateDoesNotExist:
            continue
        html = template.render({"incident": incident, "user": request.user}, request)
        panels.append(
            {"key": key, "title": title, "html": html, "refresh": key in REFRESH_ON_CHANGE}
        )
    return panels


def _timeline_context(request, incident) -> dict:
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
        "latest_event_id": _latest_event_id(incident.pk),
    }


def _postmortem_closes() -> bool:
    # With the postmortems app, an incident closes when its postmortem is published or waived
    # (DESIGN.md): the page leaves closing to that panel instead of offering a bare "Close".
    return related.get_model("postmortems", "Postmortem") is not None


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


def _detail_context(request, incident, **forms) -> dict:
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
        "targets": related.targets_for_incident(incident.pk),
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
    context.update(_timeline_context(request, incident))
    return context


@require_GET
@viewer_required
def incident_detail(request, incident_id: int):
    """The incident page: summary, assessment, roles, status, timeline and the apps' panels."""
    incident = _get_incident(incident_id)
    context = _detail_context(request, incident)
    context["app_panels"] = _render_panels(request, incident, APP_PANELS)
    context["feature_panels"] = _render_panels(request, incident, FEATURE_PANELS)
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
    unchanged = after.isdigit() and _latest_event_id(incident.pk) == int(after)
    if polling and incident.is_open and unchanged:
        return HttpResponse(status=204)
    context = {"incident": incident, **_timeline_context(request, incident)}
    response = render(request, "incidents/partials/timeline.html", context)
    if polling and not incident.is_open:
        # htmx stops polling on 286: a resolved or closed incident has nothing more coming.
        response.status_code = 286
    return response


def _latest_event_id(incident_id: int) -> int:
    latest = (
        TimelineEvent.objects.filter(incident_id=incident_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return latest or 0


def _after_action(request, incident_id: int, *, message: str = "", status: int = 200, **forms):
    """Answer an action: the refreshed body fragment for htmx, else redirect or full page."""
    ok = status < 400
    if ok and not request.htmx:
        if message:
            messages.success(request, message)
        return redirect("incidents:detail", incident_id=incident_id)
    incident = _get_incident(incident_id)
    context = _detail_context(request, incident, flash=message if ok else "", **forms)
    if request.htmx:
        response = render(request, "incidents/partials/incident_body.html", context, status=status)
        if ok:
            response["HX-Trigger"] = "incidentChanged"
        return response
    context["app_panels"] = _render_panels(request, incident, APP_PANELS)
    context["feature_panels"] = _render_panels(request, incident, FEATURE_PANELS)
    return render(request, "incidents/incident_detail.html", context, status=status)


@require_POST
@viewer_required
def incident_edit(request, incident_id: int):
    """Summary and assessment -> incident_update."""
    require_role(request.user, RESPONDER)
    incident = _get_incident(incident_id)
    form = AssessmentForm(request.POST)
    if form.is_valid():
        changes = form.changes(incident)
        try:
            services.incident_update(incident_id=incident.pk, actor=request.user, **changes)
        except IncidentError as exc:
            _add_service_error(form, exc)
        else:
            text = "Details saved." if changes else "Nothing changed."
            return _after_action(request, incident.pk, message=text)
    return _after_action(request, incident.pk, status=400, assessment_form=form)


@require_POST
@viewer_required
def incident_transition(request, incident_id: int):
    """Status change; a change made meanwhile by someone else is a conflict (409)."""
    incident = _get_incident(incident_id)
    _require_command(request, incident)
    form = TransitionForm(request.POST, allowed=Status.values)
    if not form.is_valid():
        return _after_action(request, incident.pk, status=400, transition_form=form)
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
        return _after_action(request, incident.pk, status=409, conflict=str(exc))
    except IncidentError as exc:
        _add_service_error(form, exc)
        return _after_action(request, incident.pk, status=400, transition_form=form)
    return _after_action(
        request, incident.pk, message=f"Status is now {Status(to_status).label.lower()}."
    )


@require_POST
@viewer_required
def incident_severity(request, incident_id: int):
    """Re-grade the incident."""
    incident = _get_incident(incident_id)
    _require_command(request, incident)
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
            _add_service_error(form, exc)
        else:
            return _after_action(
                request, incident.pk, message=f"Severity is now {form.cleaned_data['severity']}."
            )
    return _after_action(request, incident.pk, status=400, severity_form=form)


@require_POST
@viewer_required
def incident_acknowledge(request, incident_id: int):
    """Stamp the acknowledgement."""
    require_role(request.user, RESPONDER)
    incident = _get_incident(incident_id)
    services.incident_acknowledge(incident_id=incident.pk, actor=request.user)
    return _after_action(request, incident.pk, message="Acknowledged.")


@require_POST
@viewer_required
def role_assign(request, incident_id: int):
    """Give someone a role (its current holder is relieved); who may grant what: the service."""
    require_role(request.user, RESPONDER)
    incident = _get_incident(incident_id)
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
            return _after_action(request, incident.pk, status=403, assign_form=form)
        except IncidentConflict as exc:
            return _after_action(request, incident.pk, status=409, conflict=str(exc))
        except IncidentError as exc:
            _add_service_error(form, exc)
        else:
            return _after_action(
                request,
                incident.pk,
                message=f"{display_name(assignment.user)} is now {assignment.role_label}.",
            )
    return _after_action(request, incident.pk, status=400, assign_form=form)


@require_POST
@viewer_required
def role_relieve(request, incident_id: int, assignment_id: int):
    """End an assignment."""
    require_role(request.user, RESPONDER)
    incident = _get_incident(incident_id)
    if not ResponderAssignment.objects.filter(pk=assignment_id, incident_id=incident.pk).exists():
        raise Http404("No such assignment on this incident.")
    try:
        assignment = services.role_relieve(assignment_id=assignment_id, actor=request.user)
    except PermissionDenied as exc:
        return _after_action(request, incident.pk, status=403, conflict=str(exc))
    except IncidentError as exc:
        return _after_action(request, incident.pk, status=400, conflict=str(exc))
    return _after_action(
        request,
        incident.pk,
        message=f"{assignment.user.get_username()} relieved as {assignment.role_label}.",
    )


@require_POST
@viewer_required
def incident_note(request, incident_id: int):
    """A note on the timeline."""
    require_role(request.user, RESPONDER)
    incident = _get_incident(incident_id)
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
            _add_service_error(form, exc)
        else:
            return _after_action(request, incident.pk, message="Note added.")
    return _after_action(request, incident.pk, status=400, note_form=form)


# --- Metrics ----------------------------------------------------------------------------

PERIODS = (3, 6, 12, 24)


def _cached_dashboard(months: int) -> metrics.Dashboard:
    # The figures aggregate every incident of the period: reuse them for a short while rather
    # than recompute on every view (the page says how old they are).
    ttl = settings.QUELL_INSIGHTS_CACHE_SECONDS
    key = f"incidents:insights:{months}"
    board = None
    if ttl:
        try:
            board = cache.get(key)
        except Exception:
            # The shared cache is down or stalled (its client times out): compute the figures.
            logger.warning("Insights cache unavailable; computing the figures")
    if board is None:
        board = metrics.dashboard(months=months)
        if ttl:
            try:
                cache.set(key, board, ttl)
            except Exception:
                logger.warning("Insights cache unavailable; figures not kept")
    return board


@require_GET
@viewer_required
def metrics_dashboard(request):
    """Response times, counts and action items with server-side SVG charts."""
    try:
        months = int(request.GET.get("months", 12))
    except ValueError:
        months = 12
    if months not in PERIODS:
        months = 12
    board = _cached_dashboard(months)
    measure_series = [
        (f"{label} (median)", f"bar bar-{name}", [row[f"{name}_p50"] for row in board.by_severity])
        for name, _, label in metrics.MEASURES
    ]
    severity_chart = charts.grouped_bars(
        [row["severity"] for row in board.by_severity],
        measure_series,
        title="Median time from detection, by severity",
        fmt=duration,
        nice=charts.nice_duration_max,
    )
    months_seen = sorted({row["month"] for row in board.by_month})
    resolve_by_month = []
    for severity in Severity.values:
        values = {
            row["month"]: row["resolve_p50"]
            for row in board.by_month
            if row["severity"] == severity
        }
        resolve_by_month.append(
            (severity, f"bar bar-{severity.lower()}", [values.get(m) for m in months_seen])
        )
    month_chart = charts.grouped_bars(
        [m.strftime("%b %Y") for m in months_seen],
        resolve_by_month,
        title="Median time to resolve, by month and severity",
        fmt=duration,
        nice=charts.nice_duration_max,
    )
    count_charts = [
        (
            "By severity",
            charts.horizontal_bars(
                [(label, n) for _, label, n in board.counts_severity],
                title="Incidents by severity",
                css="bar bar-count",
            ),
        ),
        (
            "By kind",
            charts.horizontal_bars(
                [(label, n) for _, label, n in board.counts_kind],
                title="Incidents by kind",
                css="bar bar-count",
            ),
        ),
        (
            "By status",
            charts.horizontal_bars(
                [(label, n) for _, label, n in board.counts_status],
                title="Incidents by status",
                css="bar bar-count",
            ),
        ),
    ]
    if board.counts_target is not None:
        count_charts.append(
            (
                "By target",
                charts.horizontal_bars(
                    board.counts_target[:15] or [("(none linked)", 0)],
                    title="Incidents by target",
                    css="bar bar-count",
                ),
            )
        )
    return render(
        request,
        "incidents/metrics_dashboard.html",
        {
            "board": board,
            "periods": PERIODS,
            "measures": metrics.MEASURES,
            "severity_chart": severity_chart,
            "month_chart": month_chart,
            "count_charts": count_charts,
        },
    )


@require_GET
def prometheus_metrics(request):
    """Prometheus exposition, for a scraper holding QUELL_METRICS_TOKEN as a bearer token.

    Without a configured token the endpoint does not exist (404): metrics are off by default
    rather than open to anyone. No Authorization header: 401 with a Bearer challenge; a wrong
    token: 403.
    """
    token = settings.QUELL_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are disabled: set QUELL_METRICS_TOKEN to enable them.")
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        response = HttpResponse("Bearer token required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="quell-metrics"'
        return response
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        return HttpResponse("Invalid token.\n", status=403, content_type="text/plain")
    return HttpResponse(
        metrics.prometheus_exposition(),
        content_type="text/plain; version=0.0.4; charset=utf-8",
    )


def incidents_index(request):
    """/incidents/ is the same list, at its canonical address."""
    return redirect(
        reverse("incidents:list") + (f"?{request.GET.urlencode()}" if request.GET else "")
    )
