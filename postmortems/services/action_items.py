"""Action items (preventive measures): create, edit, complete (through a check gate when tied to
a diagnostic check), and overdue reminders."""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.utils import timezone

from config.kernel.actors import user_or_none

from .. import events
from ..models import (
    ActionCategory,
    ActionItem,
    ActionStatus,
    Postmortem,
    PostmortemStatus,
)
from .errors import PostmortemError

# An action item gated on a data integrity check names it "integrity:<check id>".
INTEGRITY_PREFIX = "integrity:"

EDITABLE = (
    "title",
    "description",
    "category",
    "owner",
    "due_date",
    "status",
    "tracker_url",
    "check_target",
    "check_key",
    "hold_minutes",
)
# The longest window an item's check may have to hold (a week, in minutes).
MAX_HOLD_MINUTES = 7 * 24 * 60


def _validate(values: dict) -> dict:
    if "title" in values:
        values["title"] = (values["title"] or "").strip()
        if not values["title"]:
            raise PostmortemError("A title is required.", field="title")
        if len(values["title"]) > 200:
            raise PostmortemError("Titles are limited to 200 characters.", field="title")
    if "category" in values and values["category"] not in ActionCategory.values:
        raise PostmortemError(
            f"Category must be one of {', '.join(ActionCategory.values)}.", field="category"
        )
    if "status" in values and values["status"] not in ActionStatus.values:
        raise PostmortemError(
            f"Status must be one of {', '.join(ActionStatus.values)}.", field="status"
        )
    if values.get("tracker_url"):
        try:
            URLValidator(schemes=["http", "https"])(values["tracker_url"])
        except ValidationError:
            raise PostmortemError(
                "The tracker link must be an http(s) URL.", field="tracker_url"
            ) from None
    if "owner" in values and values["owner"] is not None:
        owner = values["owner"]
        if not isinstance(owner, get_user_model()):
            owner = get_user_model().objects.filter(pk=owner).first()
        if owner is None or not owner.is_active:
            raise PostmortemError("The owner must be an active user.", field="owner")
        values["owner"] = owner
    due = values.get("due_date")
    if due is not None and not isinstance(due, datetime.date):
        raise PostmortemError("The due date must be a date.", field="due_date")
    if "check_key" in values:
        values["check_key"] = (values["check_key"] or "").strip()
    hold = values.get("hold_minutes")
    if hold is not None and (
        isinstance(hold, bool) or not isinstance(hold, int) or not 0 <= hold <= MAX_HOLD_MINUTES
    ):
        raise PostmortemError(
            f"The check must hold for 0 to {MAX_HOLD_MINUTES} minutes (empty: the default).",
            field="hold_minutes",
        )
    return values


def _validate_gate(target, check_key: str) -> None:
    if check_key.startswith(INTEGRITY_PREFIX):
        from diagnostics.integrity.models import IntegrityCheck

        raw = check_key.removeprefix(INTEGRITY_PREFIX)
        check = IntegrityCheck.objects.filter(pk=int(raw)).first() if raw.isdigit() else None
        if check is None:
            raise PostmortemError(f"Unknown integrity check {check_key!r}.", field="check_key")
        if target and getattr(target, "pk", target) != check.target_id:
            raise PostmortemError(
                f"Integrity check {check.name!r} belongs to another target.",
                field="check_target",
            )
    if bool(target) != bool(check_key):
        raise PostmortemError(
            "A verification check needs both a target database and a check.",
            field="check_key" if target else "check_target",
        )
    if check_key and not check_key.startswith(INTEGRITY_PREFIX):
        from diagnostics.checks import registry

        try:
            registry.get(check_key)
        except KeyError:
            raise PostmortemError(
                f"Unknown diagnostic check {check_key!r}.", field="check_key"
            ) from None


def _integrity_target(target, check_key: str):
    """An integrity gate names its check's target by itself: fill it in when left out."""
    if target or not check_key.startswith(INTEGRITY_PREFIX):
        return target
    from diagnostics.integrity.models import IntegrityCheck

    raw = check_key.removeprefix(INTEGRITY_PREFIX)
    if not raw.isdigit():
        return target
    check = IntegrityCheck.objects.select_related("target").filter(pk=int(raw)).first()
    return check.target if check is not None else target


def _describe(item: ActionItem) -> str:
    parts = [item.get_category_display()]
    if item.owner_id:
        parts.append(f"owner {item.owner.get_username()}")
    if item.due_date:
        parts.append(f"due {item.due_date:%Y-%m-%d}")
    if item.check_key:
        from .verification import hold_minutes

        window = hold_minutes(item)
        held = f", holding for {window} min" if window else ""
        parts.append(f"verified by {item.check_key} on {item.check_target}{held}")
    return ", ".join(parts)


@transaction.atomic
def action_item_create(
    *,
    postmortem_id: int,
    title: str,
    category: str,
    actor=None,
    description: str = "",
    owner=None,
    due_date: datetime.date | None = None,
    tracker_url: str = "",
    check_target=None,
    check_key: str = "",
    hold_minutes: int | None = None,
) -> ActionItem:
    """Add a preventive measure to a postmortem."""
    postmortem = Postmortem.objects.select_for_update().filter(pk=postmortem_id).first()
    if postmortem is None:
        raise PostmortemError(f"Postmortem {postmortem_id} does not exist.", field="postmortem")
    if postmortem.status == PostmortemStatus.WAIVED:
        raise PostmortemError("The postmortem was waived.", field="postmortem")
    values = _validate(
        {
            "title": title,
            "category": category,
            "owner": owner,
            "due_date": due_date,
            "tracker_url": tracker_url,
            "check_key": check_key,
            "hold_minutes": hold_minutes,
        }
    )
    check_target = _integrity_target(check_target, values["check_key"])
    _validate_gate(check_target, values["check_key"])
    item = ActionItem.objects.create(
        postmortem=postmortem,
        description=description or "",
        check_target=check_target,
        created_by=user_or_none(actor),
        **values,
    )
    events.action_item_added_event(item, description=_describe(item), actor=actor)
    return item


def _lock(action_item_id: int) -> ActionItem:
    item = (
        ActionItem.objects.select_for_update(of=("self",))
        .select_related("postmortem", "owner", "check_target")
        .filter(pk=action_item_id)
        .first()
    )
    if item is None:
        raise PostmortemError(f"Action item {action_item_id} does not exist.", field="action_item")
    return item


def _mark_done(item: ActionItem, *, actor, note: str = "") -> None:
    item.status = ActionStatus.DONE
    item.completed_at = timezone.now()
    item.completed_by = user_or_none(actor)
    item.save()
    events.action_item_done_event(item, note=note, actor=actor)


@transaction.atomic
def action_item_update(*, action_item_id: int, actor=None, **changes) -> ActionItem:
    """Edit an item; setting status to done goes through completion (and its check gate)."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise PostmortemError(f"Not editable: {', '.join(sorted(unknown))}.")
    changes = _validate(dict(changes))
    item = _lock(action_item_id)
    wants_done = changes.pop("status", None)
    target = changes.get("check_target", item.check_target)
    key = changes.get("check_key", item.check_key)
    if "check_target" in changes or "check_key" in changes:
        if key.startswith(INTEGRITY_PREFIX) and "check_target" not in changes:
            # An integrity check names its own target.
            target = _integrity_target(None, key) or target
            changes["check_target"] = target
        _validate_gate(target, key)
    changed = []
    for name, value in changes.items():
        if getattr(item, name) != value:
            setattr(item, name, value)
            changed.append(name)
    if wants_done is not None and wants_done != item.status:
        if wants_done == ActionStatus.DONE:
            if changed:
                item.save()
            return _complete_locked(item, actor=actor)
        item.status = wants_done
        changed.append("status")
        if wants_done == ActionStatus.WONT_DO:
            item.completed_at, item.completed_by = timezone.now(), user_or_none(actor)
        else:
            # Reopened: it is no longer complete.
            item.completed_at, item.completed_by = None, None
    if not changed:
        return item
    item.save()
    events.action_item_updated_event(item, changed=list(changed), actor=actor)
    return item


def _complete_locked(item: ActionItem, *, actor) -> ActionItem:
    if item.status == ActionStatus.DONE:
        return item
    if item.check_target_id and item.check_key:
        from .verification import start_verification

        start_verification(item, actor=actor)
        return item
    _mark_done(item, actor=actor)
    return item


@transaction.atomic
def action_item_complete(*, action_item_id: int, actor=None) -> ActionItem:
    """Mark an item done; a gated item is done only once its check passes (run now)."""
    return _complete_locked(_lock(action_item_id), actor=actor)


@transaction.atomic
def action_item_settle_verification(*, action_item_id: int) -> ActionItem:
    """Apply the outcome of a finished verification run to the item (no-op while it runs)."""
    from .verification import settle_verification

    item = _lock(action_item_id)
    return settle_verification(item, mark_done=_mark_done)


@transaction.atomic
def action_item_recheck_if_due(*, action_item_id: int) -> ActionItem:
    """Run a holding item's check again once its window is up (no-op before)."""
    from .verification import recheck_if_due

    item = _lock(action_item_id)
    recheck_if_due(item)
    return item


@transaction.atomic
def action_item_remind_overdue(*, owner_id: int, today: datetime.date | None = None) -> list[int]:
    """Mark today's overdue reminder as sent for an owner's items; returns the item ids.

    Once a day at most per item: the sweep can run hourly and retries cannot spam anybody.
    """
    from .mail import enqueue_action_item_reminder

    today = today or timezone.localdate()
    items = list(
        ActionItem.objects.select_for_update()
        .filter(
            owner_id=owner_id,
            due_date__lt=today,
            status__in=(ActionStatus.OPEN, ActionStatus.IN_PROGRESS),
        )
        .exclude(reminded_on=today)
        .order_by("due_date", "id")
    )
    if not items:
        return []
    ids = [item.pk for item in items]
    ActionItem.objects.filter(pk__in=ids).update(reminded_on=today)
    enqueue_action_item_reminder(owner_id=owner_id, action_item_ids=ids)
    return ids
