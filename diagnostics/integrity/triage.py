"""Integrity evidence for the triage answers of diagnostics.triage (registered in apps.py)."""

from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from .models import IntegrityResult, IntegrityRun


def integrity_evidence(incident_id: int) -> tuple[list, list, str]:
    """(violated, clean, url): the latest finished integrity run per target of the incident,
    its results as (result, text) pairs split by status, and the incident's integrity panel."""
    violated, clean = [], []
    runs = {}
    for run in (
        IntegrityRun.objects.filter(incident_id=incident_id, status="succeeded")
        .select_related("target")
        .order_by("-queued_at", "-id")
    ):
        runs.setdefault(run.target_id, run)  # the latest finished run per target
    for run in runs.values():
        for r in IntegrityResult.objects.filter(run=run).order_by("check_name", "id"):
            text = f"{run.target.name}: {r.check_name} {r.status}"
            if r.count is not None:
                text += f" ({r.count} rows)"
            if r.status == "violation":
                violated.append((r, text))
            elif r.status == "ok":
                clean.append((r, text))
    try:
        url = reverse("incidents:detail", kwargs={"incident_id": incident_id})
        url += "#panel-integrity"
    except NoReverseMatch:
        url = ""
    return violated, clean, url
