"""Integrity's timeline events: one small function per kind of record it puts on an incident.

Each builds the message and the data of its event and appends it through incidents' public
`timeline_append`, inside the caller's transaction. The data keys are integrity's own.
"""

from __future__ import annotations

from config.kernel.actors import user_or_none
from incidents.models import EventKind, TimelineEvent
from incidents.services import timeline_append

from .models import IntegrityResult, IntegrityRun, IntegrityRunStatus

ACTOR_LABEL = "integrity"


def run_summary_event(
    run: IntegrityRun, *, rows: list[IntegrityResult], comparison: dict | None, url: str
) -> TimelineEvent:
    """An integrity run on the incident finished (or failed): its summary (`run.summary`),
    each check's count, what moved since the baseline, and the link."""
    ok = run.status == IntegrityRunStatus.SUCCEEDED and not run.checks_violated
    ok = ok and not run.checks_errored
    requester = user_or_none(run.requested_by)
    return timeline_append(
        incident_id=run.incident_id,
        kind=EventKind.INTEGRITY,
        message=f"{run.summary} — {url}",
        actor=requester,
        actor_label="" if requester else ACTOR_LABEL,
        data={
            "integrity_run_id": run.pk,
            "purpose": run.purpose,
            "target_id": run.target_id,
            "target_name": run.target.name,
            "status": "ok" if ok else ("failed" if run.status == "failed" else "violations"),
            "ok": ok,
            "checks": len(rows),
            "violations": run.checks_violated,
            "errors": run.checks_errored,
            "baseline_run_id": run.baseline_id,
            "error": run.error,
            "url": url,
            "results": [
                {
                    "check_id": r.integrity_check_id,
                    "name": r.check_name,
                    "kind": r.kind,
                    "severity": r.severity,
                    "status": r.status,
                    "count": r.count,
                    "expected": r.expected,
                }
                for r in rows
            ],
            "diff": comparison["checks"] if comparison else [],
        },
    )
