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


# --- reading the records back (the reader lives with the writer) ------------------------------


def timeline_status(events: list[TimelineEvent]) -> tuple[str, bool | None]:
    """The data integrity status an incident's integrity events state, oldest first:
    (text, ok), ok None when no verification says yet.

    Per target, a verification (after remediation) outranks a baseline or an ad hoc check, and
    the latest of a kind wins; every target's line is shown. Only verifications say whether
    the data is intact: a clean baseline was taken before the fix and proves nothing after it.
    """
    latest: dict[str, tuple[str, dict]] = {}
    for event in events:
        data = event.data or {}
        target = str(data.get("target_id") or data.get("target_name") or "")
        known = latest.get(target)
        if (
            known is not None
            and known[1].get("purpose") == "verification"
            and data.get("purpose") not in (None, "verification")
        ):
            continue
        latest[target] = (event.message, data)
    if not latest:
        return "", None
    lines = [message for message, _ in latest.values()]
    verdicts = [
        _passed(data)
        for _, data in latest.values()
        if data.get("purpose") in (None, "verification")
    ]
    if any(v is False for v in verdicts):
        ok = False
    elif verdicts and len(verdicts) == len(latest) and all(v is True for v in verdicts):
        ok = True
    else:
        ok = None
    return "; ".join(lines), ok


def _passed(data: dict) -> bool | None:
    """Whether an integrity event says the verification passed (None: cannot tell). Besides
    Quell's own `ok`, the words of events another tool posts through the timeline API count."""
    for key in ("ok", "passed", "clean"):
        if isinstance(data.get(key), bool):
            return data[key]
    status = str(data.get("status") or data.get("outcome") or "").lower()
    if status in ("ok", "passed", "pass", "clean", "verified"):
        return True
    if status in ("failed", "fail", "critical", "error", "differences", "mismatch"):
        return False
    return None
