"""Reads for data integrity: checks, runs, results and the baseline/verification comparison.
Nothing here connects to a target."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from diagnostics.integrity.models import (
    IntegrityCheck,
    IntegrityPurpose,
    IntegrityResult,
    IntegrityRun,
)
from diagnostics.models import IncidentTarget


def check_list(*, target_id: int) -> QuerySet[IntegrityCheck]:
    return IntegrityCheck.objects.filter(target_id=target_id).order_by("name", "id")


def run_list(*, target_id: int | None = None, incident_id: int | None = None) -> QuerySet:
    qs = IntegrityRun.objects.select_related("target", "requested_by")
    if target_id is not None:
        qs = qs.filter(target_id=target_id)
    if incident_id is not None:
        qs = qs.filter(incident_id=incident_id)
    return qs.order_by("-queued_at", "-id")


def run_get(*, run_id: int) -> IntegrityRun:
    return (
        IntegrityRun.objects.select_related("target", "baseline", "requested_by")
        .prefetch_related(
            Prefetch("results", queryset=IntegrityResult.objects.order_by("check_name", "id"))
        )
        .get(pk=run_id)
    )


# Display order: what needs attention first.
RESULT_ORDER = {"error": 0, "violation": 1, "ok": 2}
OUTCOME_ORDER = {
    "new": 0,
    "worse": 1,
    "error": 2,
    "improved": 3,
    "fixed": 4,
    "informational": 5,
    "added": 6,
    "removed": 7,
    "unchanged": 8,
}


def ordered_results(results) -> list[IntegrityResult]:
    """Errors, then violations, then passes; by check name within each."""
    return sorted(results, key=lambda r: (RESULT_ORDER.get(r.status, 3), r.check_name))


def _key(result: IntegrityResult):
    return result.integrity_check_id or f"name:{result.check_name}"


def _outcome(before: IntegrityResult | None, after: IntegrityResult | None) -> str:
    if before is None:
        return "added"
    if after is None:
        return "removed"
    if "error" in (before.status, after.status):
        return "error"
    if before.status == "violation" and after.status == "ok":
        return "fixed"
    if before.status == "ok" and after.status == "violation":
        return "new"
    if before.status == "violation":
        if after.count < before.count:
            return "improved"
        if after.count > before.count:
            return "worse"
        return "unchanged"
    # Both pass: record counts without a range still show how much they moved.
    if not after.expected and before.count != after.count:
        return "informational"
    return "unchanged"


def compare(base: IntegrityRun, head: IntegrityRun) -> dict:
    """Per check: before, after, delta and what happened (fixed, new, improved, worse,
    unchanged, informational, added, removed, error)."""
    before = {_key(r): r for r in base.results.all()}
    after = {_key(r): r for r in head.results.all()}
    keys = list(after) + [k for k in before if k not in after]
    checks, tally = [], {}
    for key in keys:
        b, a = before.get(key), after.get(key)
        outcome = _outcome(b, a)
        tally[outcome] = tally.get(outcome, 0) + 1
        bc = b.count if b is not None else None
        ac = a.count if a is not None else None
        checks.append(
            {
                "check_id": (a or b).integrity_check_id,
                "name": (a or b).check_name,
                "kind": (a or b).kind,
                "before": bc,
                "after": ac,
                "delta": (ac - bc) if bc is not None and ac is not None else None,
                "before_status": b.status if b is not None else None,
                "after_status": a.status if a is not None else None,
                "outcome": outcome,
            }
        )
    checks.sort(key=lambda c: OUTCOME_ORDER.get(c["outcome"], 9))
    return {
        "base": {"id": base.pk, "purpose": base.purpose, "finished_at": base.finished_at},
        "head": {"id": head.pk, "purpose": head.purpose, "finished_at": head.finished_at},
        "counts": tally,
        "checks": checks,
    }


def run_compare(run: IntegrityRun, *, other: IntegrityRun | None = None) -> dict | None:
    """A verification against its baseline (or any two runs of the same target)."""
    base = other or run.baseline
    if base is None:
        return None
    return compare(base, run)


def incident_blocks(*, incident_id: int) -> list[dict]:
    """For the incident panel: per affected target, its checks, the latest baseline and
    verification for this incident, and their comparison."""
    blocks = []
    links = IncidentTarget.objects.filter(incident_id=incident_id).select_related("target")
    for link in links.order_by("target__name"):
        runs = IntegrityRun.objects.filter(target_id=link.target_id, incident_id=incident_id)
        latest = run_list(target_id=link.target_id, incident_id=incident_id).first()
        baseline = runs.filter(purpose=IntegrityPurpose.BASELINE).order_by("-queued_at").first()
        verification = (
            runs.filter(purpose=IntegrityPurpose.VERIFICATION).order_by("-queued_at").first()
        )
        comparison = None
        if (
            verification is not None
            and verification.baseline_id
            and verification.status == "succeeded"
            and verification.baseline.status == "succeeded"
        ):
            comparison = compare(verification.baseline, verification)
        shown = latest
        blocks.append(
            {
                "target": link.target,
                "checks": list(check_list(target_id=link.target_id)),
                "latest": shown,
                "results": ordered_results(shown.results.all()) if shown else [],
                "baseline": baseline,
                "verification": verification,
                "comparison": comparison,
            }
        )
    return blocks


def incident_integrity_status(*, incident_id: int) -> dict:
    """The latest verification per affected target: {"ok": bool|None, "lines": [...]}.

    ok is None when no target has been verified yet."""
    lines, oks = [], []
    targets = IncidentTarget.objects.filter(incident_id=incident_id).values_list(
        "target_id", flat=True
    )
    for target_id in targets:
        run = (
            IntegrityRun.objects.filter(
                incident_id=incident_id,
                target_id=target_id,
                purpose=IntegrityPurpose.VERIFICATION,
                status__in=("succeeded", "failed"),
            )
            .order_by("-queued_at", "-id")
            .first()
        )
        if run is None:
            continue
        lines.append(run.summary)
        oks.append(run.status == "succeeded" and not run.checks_violated and not run.checks_errored)
    return {"ok": all(oks) if oks else None, "lines": lines}
