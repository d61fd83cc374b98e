"""Diagnostics' timeline events: one small function per kind of record it puts on an incident.

Each builds the message and the data of its event and appends it through incidents' public
`timeline_append`, inside the caller's transaction. The data keys are diagnostics' own.
"""

from __future__ import annotations

from config.kernel.actors import user_or_none
from incidents.models import EventKind, TimelineEvent
from incidents.services import timeline_append

from .models import CheckResult, DiagnosticRun, RunStatus, TargetDatabase

ACTOR_LABEL = "diagnostics"
# Statuses whose findings an incident's timeline should carry, worst first.
NOTABLE = ("critical", "error", "warning")
# How many findings rows per check the timeline summary keeps (the run page has them all).
TIMELINE_FINDINGS_PER_CHECK = 3


def _affected_targets_changed(
    *, incident_id: int, message: str, target_id: int, before: list, after: list, actor
) -> TimelineEvent:
    return timeline_append(
        incident_id=incident_id,
        kind=EventKind.FIELDS_CHANGED,
        message=message,
        actor=actor,
        actor_label="" if user_or_none(actor) else ACTOR_LABEL,
        data={
            "changes": {"affected_targets": {"from": before, "to": after}},
            "target_id": target_id,
        },
    )


def affected_target_added_event(
    *, incident_id: int, target: TargetDatabase, before: list[str], after: list[str], actor=None
) -> TimelineEvent:
    """A target was marked as affected by the incident (`before`/`after`: the target names)."""
    return _affected_targets_changed(
        incident_id=incident_id,
        message=f"Affected target added: {target.name} ({target.environment})",
        target_id=target.pk,
        before=before,
        after=after,
        actor=actor,
    )


def affected_target_removed_event(
    *,
    incident_id: int,
    target_id: int,
    target_name: str,
    before: list[str],
    after: list[str],
    actor=None,
) -> TimelineEvent:
    """A target is no longer marked as affected (its runs stay linked as evidence)."""
    return _affected_targets_changed(
        incident_id=incident_id,
        message=f"Affected target removed: {target_name}",
        target_id=target_id,
        before=before,
        after=after,
        actor=actor,
    )


def run_summary_event(run: DiagnosticRun, *, rows: list[CheckResult], url: str) -> TimelineEvent:
    """A run on the incident finished (or failed): worst status, what matters, and the link."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    rank = {status: i for i, status in enumerate(NOTABLE)}
    notable = sorted((r for r in rows if r.status in NOTABLE), key=lambda r: rank[r.status])
    if run.status == RunStatus.FAILED:
        message = f"Diagnostics on {run.target.name} failed: {run.error}"
    else:
        tally = ", ".join(
            f"{counts[s]} {s}"
            for s in ("critical", "error", "warning", "ok", "skipped")
            if counts.get(s)
        )
        message = f"Diagnostics on {run.target.name}: {run.worst_status.upper()} ({tally})"
        if notable:
            message += ". " + "; ".join(f"{r.title}: {r.summary}" for r in notable[:5])
    message += f" — {url}"
    return timeline_append(
        incident_id=run.incident_id,
        kind=EventKind.DIAGNOSTIC_RUN,
        message=message,
        actor_label=ACTOR_LABEL,
        data={
            "run_id": run.pk,
            "target_id": run.target_id,
            "target_name": run.target.name,
            "status": run.status,
            "worst_status": run.worst_status,
            "counts": counts,
            "error": run.error,
            "url": url,
            "findings": [
                {
                    "key": r.key,
                    "title": r.title,
                    "status": r.status,
                    "summary": r.summary,
                    "rows": (r.findings or [])[:TIMELINE_FINDINGS_PER_CHECK],
                    "fix": r.fix,
                }
                for r in notable
            ],
        },
    )
