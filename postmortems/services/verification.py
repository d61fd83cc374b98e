"""The check gate of an action item: the item is done only when its diagnostic check passes.

Trying to close a gated item starts a diagnostic run of that one check on the item's target
(diagnostics.services.diagnostic_run_start; a worker executes it). When the run has finished,
`settle_verification` reads the check's result: OK marks the item done on behalf of whoever asked,
anything else leaves it open with what the check found. Settling happens from a task queued after
the start, from a periodic sweep, and when someone looks at the item, whichever comes first.
"""

from __future__ import annotations

from django.utils import timezone

from diagnostics.models import CheckResult, RunStatus, Trigger
from diagnostics.services import DiagnosticsError, diagnostic_run_start
from incidents.dispatch import dispatch_on_commit

from .. import events
from ..models import ActionItem, ActionStatus
from .errors import PostmortemError

INTEGRITY_PREFIX = "integrity:"

RUNNING = "running"
PASSED = "ok"


def _integrity_check_id(item: ActionItem) -> int | None:
    """The integrity check an item is gated on ("integrity:<id>"), if it is."""
    if item.check_key.startswith(INTEGRITY_PREFIX):
        raw = item.check_key.removeprefix(INTEGRITY_PREFIX)
        return int(raw) if raw.isdigit() else None
    return None


def _start_integrity(item: ActionItem, check_id: int, *, actor) -> None:
    """Run the one integrity check on its target now (a worker executes it)."""
    from diagnostics.integrity.models import IntegrityCheck
    from diagnostics.integrity.services import integrity_run_start

    check = IntegrityCheck.objects.filter(pk=check_id).first()
    if check is None:
        raise PostmortemError(
            f"The integrity check {item.check_key} no longer exists.", field="check_key"
        )
    try:
        run = integrity_run_start(
            target_id=check.target_id,
            incident_id=item.postmortem.incident_id,
            check_ids=[check.pk],
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
        )
    except DiagnosticsError as exc:
        raise PostmortemError(f"Cannot run the integrity check: {exc}", field="check_key") from exc
    item.verification_run = None
    item.verification_integrity_run = run
    item.verification_summary = f"Running integrity check {check.name!r} on {check.target}…"


def start_verification(item: ActionItem, *, actor) -> ActionItem:
    """Start (or join) the verification run of a locked, gated item."""
    if item.is_verifying and (item.verification_run_id or item.verification_integrity_run_id):
        return item
    integrity_check_id = _integrity_check_id(item)
    if integrity_check_id is not None:
        _start_integrity(item, integrity_check_id, actor=actor)
        return _started(item, actor=actor)
    try:
        run = diagnostic_run_start(
            target_id=item.check_target_id,
            incident_id=item.postmortem.incident_id,
            trigger=Trigger.MANUAL,
            requested_by=actor if getattr(actor, "is_authenticated", False) else None,
            suite={"keys": [item.check_key]},
        )
    except DiagnosticsError as exc:
        raise PostmortemError(
            f"Cannot run the verification check: {exc}", field="check_key"
        ) from exc
    item.verification_run = run
    item.verification_integrity_run = None
    item.verification_summary = f"Running {item.check_key} on {item.check_target}…"
    return _started(item, actor=actor)


def _started(item: ActionItem, *, actor) -> ActionItem:
    item.verification_status = RUNNING
    item.completion_requested_by = actor if getattr(actor, "is_authenticated", False) else None
    item.save()
    from ..tasks import settle_action_item_verification

    dispatch_on_commit(settle_action_item_verification, action_item_id=item.pk, countdown=3)
    return item


def _integrity_verdict(item: ActionItem) -> tuple[str, str] | None:
    """(status, summary) of a finished integrity run, None while it runs."""
    from diagnostics.integrity.models import IntegrityResult, IntegrityRunStatus

    run = item.verification_integrity_run
    if run.status not in (IntegrityRunStatus.SUCCEEDED, IntegrityRunStatus.FAILED):
        return None
    result = IntegrityResult.objects.filter(
        run=run, integrity_check_id=_integrity_check_id(item)
    ).first()
    if run.status == IntegrityRunStatus.FAILED or result is None:
        return "error", run.error or f"The run produced no result for {item.check_key}."
    if result.status == "error":
        return "error", f"{result.check_name}: {result.error}"
    expected = ", ".join(f"{k} {v}" for k, v in result.expected.items())
    summary = f"{result.check_name}: {result.count} (expected {expected or 'any'})"
    return result.status, summary


def settle_verification(item: ActionItem, *, mark_done) -> ActionItem:
    """Apply a finished verification run's verdict to a locked item."""
    if not item.is_verifying:
        return item
    if item.verification_integrity_run_id:
        verdict = _integrity_verdict(item)
        if verdict is None:
            return item
        status, summary = verdict
        run = item.verification_integrity_run
        return _apply(item, status, summary, run, mark_done=mark_done)
    run = item.verification_run
    if run is None:
        return item
    if run.status not in (RunStatus.SUCCEEDED, RunStatus.FAILED):
        return item
    result = CheckResult.objects.filter(run=run, key=item.check_key).first()
    if run.status == RunStatus.FAILED or result is None:
        status = "error"
        summary = run.error or f"The run produced no result for {item.check_key}."
    else:
        status = result.status
        summary = result.summary or result.error or status
    return _apply(item, status, summary, run, mark_done=mark_done)


def _apply(item: ActionItem, status: str, summary: str, run, *, mark_done) -> ActionItem:
    item.verification_status = status
    item.verification_summary = summary
    item.verified_at = timezone.now()
    requester = item.completion_requested_by
    if status == PASSED:
        mark_done(item, actor=requester, note=f" (verified: {item.check_key} passed: {summary})")
        return item
    item.save()
    events.action_item_verification_failed_event(
        item, run_id=run.pk, check_status=status, summary=summary, actor=requester
    )
    return item


def items_awaiting_verification() -> list[int]:
    """Ids of items whose verification run is running or finished but not yet applied."""
    return list(
        ActionItem.objects.filter(
            verification_status=RUNNING, status__in=(ActionStatus.OPEN, ActionStatus.IN_PROGRESS)
        ).values_list("pk", flat=True)
    )
