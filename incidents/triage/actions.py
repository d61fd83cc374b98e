"""Where a next step's Quell action takes the responder, found without importing other apps.

Checks and runbooks live in other apps (diagnostics); incidents knows them only by URL names and
by the incident page's panels. An action whose app is not installed shows as plain text.
"""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from ..registry import AREAS, panels
from .models import TriageAction

# action -> (panel it lives in, diagnostics check key it is about or "", how to say it)
ACTIONS = {
    TriageAction.RUN_DIAGNOSTICS: ("diagnostics", "", "Run diagnostics"),
    TriageAction.CHECK_MIGRATIONS: ("diagnostics", "recent_migrations", "Recent migrations"),
    TriageAction.BLOCKING_QUERIES: ("diagnostics", "blocking_locks", "Blocking queries"),
    TriageAction.SLOW_QUERIES: ("diagnostics", "slow_queries", "Slow queries"),
    TriageAction.LONG_RUNNING_QUERIES: (
        "diagnostics",
        "long_running_queries",
        "Long-running queries",
    ),
    TriageAction.CONNECTIONS: ("diagnostics", "connections", "Connections"),
    TriageAction.REMEDIATION: ("remediation", "", "Remediation"),
    TriageAction.INTEGRITY_VERIFICATION: ("integrity", "", "Integrity verification"),
    TriageAction.PITR_RUNBOOK: ("runbooks", "", "Point-in-time recovery runbook"),
    TriageAction.SCHEMA_ROLLBACK_RUNBOOK: ("runbooks", "", "Schema rollback runbook"),
    TriageAction.MITIGATION_RUNBOOK: ("runbooks", "", "Quick mitigation runbook"),
}

# The runbook each runbook action starts (keys of the runbooks diagnostics seeds).
RUNBOOKS = {
    TriageAction.PITR_RUNBOOK: "point-in-time-recovery",
    TriageAction.SCHEMA_ROLLBACK_RUNBOOK: "schema-rollback",
    TriageAction.MITIGATION_RUNBOOK: "quick-mitigation",
}


def panel_available(panel: str) -> bool:
    """True when the incident page shows that panel (an app registered it)."""
    return any(p.key == panel for area in AREAS for p in panels(area))


def _reverse(name: str, **kwargs) -> str:
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return ""


def resolve(action: str, *, incident_id: int | None) -> dict:
    """{action, label, check, url, run_url, runbook, panel, available} for a next step's action
    (no URLs without an incident). run_url takes a POST (with `runbook` when set) that answers
    with that panel's body."""
    if not action or action not in ACTIONS:
        return {
            "action": "",
            "label": "",
            "check": "",
            "url": "",
            "run_url": "",
            "runbook": "",
            "panel": "",
            "available": False,
        }
    panel, check, label = ACTIONS[action]
    available = panel_available(panel)
    detail = _reverse("incidents:detail", incident_id=incident_id) if incident_id else ""
    url = f"{detail}#panel-{panel}" if available and detail else ""
    # A POST target for a button in the triage panel: run diagnostics, or start the runbook.
    run_url = ""
    runbook = RUNBOOKS.get(action, "")
    if available and incident_id:
        if action == TriageAction.RUN_DIAGNOSTICS:
            run_url = _reverse("diagnostics:incident-run", incident_id=incident_id)
        elif runbook:
            run_url = _reverse("remediation:incident-runbook-start", incident_id=incident_id)
    return {
        "action": str(action),
        "label": label,
        "check": check,
        "url": url,
        "run_url": run_url,
        "runbook": runbook,
        "panel": panel,
        "available": available,
    }
