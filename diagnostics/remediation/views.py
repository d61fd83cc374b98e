"""The incident page's Remediation panel (htmx partials): filter, preview, confirm, results.

Thin views: the services decide (permission, guardrails, identity re-check); these render.
Without JavaScript every form posts normally and the partial is shown on its own page.
"""

from __future__ import annotations

import datetime

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import ADMIN, VIEWER, role_required, user_has_role
from incidents.models import Incident

from ..models import IncidentTarget
from ..services import DiagnosticsError
from . import backends as b
from . import services
from .models import RemediationAction, RemediationKind, RemediationStatus

HISTORY = 20
POLL_SECONDS = 2
DEFAULT_MIN_DURATION_S = 300  # the playbook's "longer than 5 minutes"


def _context(request: HttpRequest, incident: Incident, **extra) -> dict:
    links = list(
        IncidentTarget.objects.filter(incident=incident)
        .select_related("target")
        .order_by("target__name")
    )
    can_act = services.may_remediate(request.user, incident=incident) and incident.status != (
        "closed"
    )
    context = {
        "incident": incident,
        "targets": [link.target for link in links if link.target.remediation_allowed],
        "blocked_targets": [link.target for link in links if not link.target.remediation_allowed],
        "can_act": can_act,
        "can_force": can_act and user_has_role(request.user, ADMIN),
        "kinds": RemediationKind.choices,
        "states": b.STATES,
        **_history(incident),
        "form": {"min_duration_s": DEFAULT_MIN_DURATION_S, "states": ["active"], "kind": "cancel"},
        "action": None,
        "error": "",
    }
    context.update(extra)
    return context


def _history(incident: Incident) -> dict:
    history = list(
        RemediationAction.objects.filter(incident=incident)
        .exclude(status=RemediationStatus.PREVIEWED)
        .select_related("target", "executed_by")[:HISTORY]
    )
    working = (RemediationStatus.EXECUTING, RemediationStatus.ESCALATION_PENDING)
    return {
        "history": history,
        "history_polling": any(a.status in working for a in history),
        "poll_seconds": POLL_SECONDS,
    }


def _render(request, incident, *, status: int = 200, **extra) -> HttpResponse:
    return render(
        request,
        "remediation/_remediation_body.html",
        _context(request, incident, **extra),
        status=status,
    )


@role_required(VIEWER)
@require_GET
def remediation_panel(request: HttpRequest, incident_id: int) -> HttpResponse:
    """The panel's body: the filter form (for those allowed) and past remediations.

    Opened from a finding (?remediate=terminate&target=..&pid=..&backend_start=..[&root_of=N])
    it shows that session's preview at once, for those who may remediate; the others see the
    form filled in and who may act.
    """
    incident = get_object_or_404(Incident, pk=incident_id)
    finding = _finding_from(request.GET)
    if finding is None:
        return _render(request, incident)
    form = {
        "target": str(finding["target"]),
        "kind": finding["kind"],
        "pid": str(finding["pid"]),
        "states": [],
        "min_duration_s": "",
    }
    if not (services.may_remediate(request.user, incident=incident) and incident.is_open):
        return _render(request, incident, form=form, finding=finding)
    try:
        action = services.remediation_preview(
            target_id=finding["target"],
            incident_id=incident.pk,
            kind=finding["kind"],
            filters={"pid": finding["pid"]},
            actor=request.user,
        )
    except DiagnosticsError as exc:
        return _render(request, incident, status=400, error=str(exc), form=form, finding=finding)
    _same_session(finding, action)
    return _render(request, incident, action=action, form=form, finding=finding)


FINDING_WORDS = {
    "blocking_locks": "the blocking chain",
    "long_running_queries": "the long-running queries",
    "idle_in_transaction": "the sessions idle in transaction",
}


def _finding_from(query) -> dict | None:
    """The session a finding's fix link names, or None when the address names none."""
    kind = query.get("remediate", "")
    if kind not in RemediationKind.values:
        return None
    try:
        target, pid = int(query.get("target", "")), int(query.get("pid", ""))
        root_of = int(query.get("root_of", "") or -1)
    except ValueError:
        return None
    return {
        "kind": kind,
        "target": target,
        "pid": pid,
        "backend_start": query.get("backend_start", ""),
        "started": _started_words(query.get("backend_start", "")),
        "root_of": root_of if root_of >= 0 else None,
        "source": FINDING_WORDS.get(query.get("finding", ""), "a diagnostics finding"),
    }


def _same_session(finding: dict, action) -> None:
    """Whether the previewed backend is the very session of the finding (pid and start): a pid
    reused by a new session must not be hit in its place."""
    seen = _parse_time(finding["backend_start"])
    finding["same_session"] = None
    for row in action.eligible:
        if row["pid"] == finding["pid"] and seen is not None:
            finding["same_session"] = _parse_time(row["backend_start"]) == seen
            row["unticked"] = not finding["same_session"]


def _started_words(value: str) -> str:
    moment = _parse_time(value)
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_time(value):
    try:
        return datetime.datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


@role_required(VIEWER)
@require_GET
def remediation_history(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Past remediations (polled while one waits for its grace period or is executing)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    return render(
        request,
        "remediation/_remediation_history.html",
        {"incident": incident, **_history(incident)},
    )


def _form_filters(post) -> tuple[dict, dict]:
    """The posted form as service filters, and as the form's values to show again."""
    form = {
        "target": post.get("target", ""),
        "kind": post.get("kind", ""),
        "pid": post.get("pid", "").strip(),
        "states": post.getlist("states"),
        "min_duration_s": post.get("min_duration_s", "").strip(),
        "user": post.get("user", "").strip(),
        "application": post.get("application", "").strip(),
        "query_contains": post.get("query_contains", "").strip(),
        "grace_s": post.get("grace_s", "").strip(),
        "force": bool(post.get("force")),
    }
    if form["pid"]:
        filters = {"pid": form["pid"]}
    else:
        filters = {
            k: form[k]
            for k in ("states", "min_duration_s", "user", "application", "query_contains")
            if form[k]
        }
    return filters, form


@login_required
@require_POST
def remediation_preview(request: HttpRequest, incident_id: int) -> HttpResponse:
    """Preview: exactly which backends the action would hit (checkboxes to confirm)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    if not services.may_remediate(request.user, incident=incident):
        raise PermissionDenied(
            "Only a commander, this incident's Incident Commander or its Technical Lead may."
        )
    filters, form = _form_filters(request.POST)
    try:
        target_id = int(form["target"])
    except ValueError:
        return _render(request, incident, status=400, error="Choose a database.", form=form)
    try:
        action = services.remediation_preview(
            target_id=target_id,
            incident_id=incident.pk,
            kind=form["kind"],
            filters=filters,
            force=form["force"],
            grace_s=form["grace_s"] or None,
            actor=request.user,
        )
    except DiagnosticsError as exc:
        return _render(request, incident, status=400, error=str(exc), form=form)
    return _render(request, incident, action=action, form=form)


@login_required
@require_POST
def remediation_execute(request: HttpRequest, incident_id: int, action_id: int) -> HttpResponse:
    """Signal the backends ticked in the preview (each re-checked right before)."""
    incident = get_object_or_404(Incident, pk=incident_id)
    action = get_object_or_404(RemediationAction, pk=action_id, incident=incident)
    if not services.may_remediate(request.user, incident=incident):
        raise PermissionDenied(
            "Only a commander, this incident's Incident Commander or its Technical Lead may."
        )
    confirmed = []
    for value in request.POST.getlist("backend"):
        pid, _, start = value.partition("|")
        confirmed.append({"pid": pid, "backend_start": start})
    try:
        action = services.remediation_execute(
            action_id=action.pk, confirmed=confirmed, actor=request.user
        )
    except DiagnosticsError as exc:
        return _render(request, incident, status=400, error=str(exc), action=action)
    response = _render(request, incident, executed=action)
    # The timeline listens for this and refreshes itself.
    response["HX-Trigger"] = "incidentChanged"
    return response
