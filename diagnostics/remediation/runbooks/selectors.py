"""Runbook reads."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from diagnostics.remediation.models import (
    IncidentRunbook,
    IncidentRunbookStep,
    Runbook,
    RunbookStep,
)


def runbook_list(*, active_only: bool = True) -> QuerySet[Runbook]:
    """Runbook definitions with their steps, in order."""
    qs = Runbook.objects.prefetch_related(
        Prefetch("steps", queryset=RunbookStep.objects.order_by("position", "id"))
    )
    return qs.filter(active=True) if active_only else qs


def incident_runbooks(*, incident_id: int) -> QuerySet[IncidentRunbook]:
    """The runbooks started on an incident, with their steps and who ticked them."""
    return (
        IncidentRunbook.objects.filter(incident_id=incident_id)
        .select_related("runbook", "started_by")
        .prefetch_related(
            Prefetch(
                "steps",
                queryset=IncidentRunbookStep.objects.select_related("done_by").order_by(
                    "position", "id"
                ),
            )
        )
    )
