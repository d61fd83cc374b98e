"""The check gate of an action item: the item is done only when its check holds.

Trying to close a gated item starts a diagnostic run of that one check on the item's target
(diagnostics.services.diagnostic_run_start; a worker executes it). When the run has finished,
`settle_verification` reads the check's result. A fix is verified, not the momentary absence
of its symptom: the check must pass on consecutive runs over the item's window (10 minutes by
default, `hold_minutes` per item). The first pass starts the window (status "holding"); when
the window is up the check runs again (the periodic sweep, or the page's poll), and a pass
then, with no failure of that check on the target in between, marks the item done on behalf of
whoever asked. A check that verifies a definition (an index now valid) needs one pass. Anything
but a pass leaves the item open with what the check found, and starts the window afresh.
Settling happens from a task queued after the start, from a periodic sweep, and when someone
looks at the item, whichever comes first.
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.utils import timezone

from diagnostics.checks import registry
from diagnostics.models import CheckResult, RunStatus, Trigger
from diagnostics.selectors import check_statuses_between
from diagnostics.services import DiagnosticsError, diagnostic_run_start
from incidents.dispatch import dispatch_on_commit

from .. import events
from ..models import ActionItem, ActionStatus
from .errors import PostmortemError

INTEGRITY_PREFIX = "integrity:"

RUNNING = "running"
PASSED = "ok"
HOLDING = "holding"  # passed; must go on passing until the window is up


def hold_minutes(item: ActionItem) -> int:
    """Minutes the item's check must keep passing: the item's own, else one pass for a check
    that verifies a definition, else the setting."""
    if item.hold_minutes is not None:
        return item.hold_minutes
    if item.check_key and not item.check_key.startswith(INTEGRITY_PREFIX):
        try:
            if registry.get(item.check_key).verifies_definition:
                return 0
        except KeyError:
            pass
    return settings.QUELL_ACTION_ITEM_HOLD_MINUTES


def hold_until(item: ActionItem) -> datetime.datetime | None:
    """When a holding item's window is up (its check then runs again)."""
    if item.passing_since is None:
        return None
    return item.passing_since + datetime.timedelta(minutes=hold_minutes(item))


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


def _failed_since(item: ActionItem, until: datetime.datetime) -> bool:
    """Whether the check did anything but pass on the target since the series began (runs of
    it for other reasons count too: an incident's, a monitor's)."""
    if item.check_key.startswith(INTEGRITY_PREFIX):
        return False  # integrity runs are only the item's own: each one is settled here
    statuses = check_statuses_between(
        target_id=item.check_target_id, key=item.check_key, since=item.passing_since, until=until
    )
    return any(status != PASSED for status in statuses)


def _apply(item: ActionItem, status: str, summary: str, run, *, mark_done) -> ActionItem:
    now = timezone.now()
    item.verification_summary = summary
    item.verified_at = now
    requester = item.completion_requested_by
    if status == PASSED:
        ran_at = run.started_at or now
        if item.passing_since is None or _failed_since(item, ran_at):
            item.passing_since = ran_at
        window = hold_minutes(item)
        if ran_at - item.passing_since >= datetime.timedelta(minutes=window):
            item.verification_status = PASSED
            held = f" for {window} min" if window else ""
            mark_done(
                item,
                actor=requester,
                note=f" (verified: {item.check_key} passed{held}: {summary})",
            )
            return item
        item.verification_status = HOLDING
        item.save()
        events.action_item_holding_event(
            item, run_id=run.pk, until=hold_until(item), summary=summary, actor=requester
        )
        return item
    item.verification_status = status
    item.passing_since = None
    item.save()
    events.action_item_verification_failed_event(
        item, run_id=run.pk, check_status=status, summary=summary, actor=requester
    )
    return item


def recheck_if_due(item: ActionItem, *, now: datetime.datetime | None = None) -> bool:
    """Run the check of a holding item again once its window is up; True when started."""
    until = hold_until(item)
    if not item.is_holding or until is None or (now or timezone.now()) < until:
        return False
    start_verification(item, actor=item.completion_requested_by)
    return True


def items_holding_due(now: datetime.datetime | None = None) -> list[int]:
    """Ids of holding items whose window may be up (each is checked under its lock)."""
    return list(
        ActionItem.objects.filter(
            verification_status=HOLDING,
            status__in=(ActionStatus.OPEN, ActionStatus.IN_PROGRESS),
            passing_since__lte=now or timezone.now(),
        ).values_list("pk", flat=True)
    )


def items_awaiting_verification() -> list[int]:
    """Ids of items whose verification run is running or finished but not yet applied."""
    return list(
        ActionItem.objects.filter(
            verification_status=RUNNING, status__in=(ActionStatus.OPEN, ActionStatus.IN_PROGRESS)
        ).values_list("pk", flat=True)
    )
