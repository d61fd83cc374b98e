"""Where a next step's Quell action takes the responder, found without importing other apps.

The app that serves an action registers where it leads (incidents.registry.
register_triage_action: diagnostics its checks, remediation its runbooks, integrity its
verification); an action no app registered shows as plain text.
"""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from ..registry import triage_action
from .models import TriageAction


def _reverse(name: str, **kwargs) -> str:
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return ""


def resolve(action: str, *, incident_id: int | None) -> dict:
    """{action, label, check, url, run_url, runbook, panel, available} for a next step's action
    (no URLs without an incident). run_url takes a POST (with `runbook` when set) that answers
    with that panel's body."""
    target = triage_action(action) if action else None
    if target is None:
        # No app serves it here (or no action): said as plain text, when it is one at all.
        known = action in TriageAction.values and action != TriageAction.NONE
        return {
            "action": str(action) if known else "",
            "label": TriageAction(action).label if known else "",
            "check": "",
            "url": "",
            "run_url": "",
            "runbook": "",
            "panel": "",
            "available": False,
        }
    detail = _reverse("incidents:detail", incident_id=incident_id) if incident_id else ""
    url = f"{detail}#panel-{target.panel}" if detail else ""
    # A POST target for a button in the triage panel: run diagnostics, or start the runbook.
    run_url = ""
    if target.run_route and incident_id:
        run_url = _reverse(target.run_route, incident_id=incident_id)
    return {
        "action": str(action),
        "label": target.label,
        "check": target.check,
        "url": url,
        "run_url": run_url,
        "runbook": target.runbook,
        "panel": target.panel,
        "available": True,
    }
