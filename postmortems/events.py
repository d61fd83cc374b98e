"""Postmortems' timeline events: one small function per kind of record the app puts on an
incident (the postmortem's lifecycle, its action items and its review meetings).

Each builds the message and the data of its event and appends it through incidents' public
`timeline_append`, inside the caller's transaction. The data keys are postmortems' own.
"""

from __future__ import annotations

import datetime

from django.utils import timezone

from config.kernel.actors import user_or_none
from incidents.models import EventKind, TimelineEvent
from incidents.services import timeline_append

from .models import ActionItem, Postmortem, PostmortemStatus, Review

ACTOR_LABEL = "postmortems"
USERS_ADMIN = "Admin → Users"
# What the timeline says when a postmortem enters each status.
STATUS_MESSAGES = {
    PostmortemStatus.IN_REVIEW: "Postmortem submitted for review",
    PostmortemStatus.DRAFT: "Postmortem returned to draft",
    PostmortemStatus.PUBLISHED: "Postmortem published",
    PostmortemStatus.WAIVED: "Postmortem waived",
}


def _append(incident_id: int, *, message: str, actor, data: dict) -> TimelineEvent:
    user = user_or_none(actor)
    return timeline_append(
        incident_id=incident_id,
        kind=EventKind.POSTMORTEM,
        message=message,
        actor=user,
        actor_label="" if user else ACTOR_LABEL,
        data=data,
    )


def fmt_when(value: datetime.datetime) -> str:
    """A meeting time as invitations and the timeline show it: Tue 2026-01-31 14:05 UTC."""
    return f"{timezone.localtime(value):%a %Y-%m-%d %H:%M %Z}"


def _deadline(value: datetime.datetime) -> str:
    return f"{timezone.localtime(value):%Y-%m-%d %H:%M %Z}"


# --- the postmortem ---------------------------------------------------------------------------


def postmortem_created_event(postmortem: Postmortem, *, actor=None) -> TimelineEvent:
    """The draft was opened; the message says by when the review is due."""
    due = (
        f"; review due by {_deadline(postmortem.review_due_at)}"
        if postmortem.review_due_at
        else "; no review required for this severity"
    )
    return _append(
        postmortem.incident_id,
        message=f"Postmortem draft opened{due}",
        actor=actor,
        data={
            "postmortem_id": postmortem.pk,
            "action": "created",
            "review_due_at": postmortem.review_due_at.isoformat()
            if postmortem.review_due_at
            else None,
        },
    )


def review_deadline_changed_event(postmortem: Postmortem) -> TimelineEvent:
    """The review deadline was recomputed (the incident's severity or resolution changed)."""
    incident = postmortem.incident
    when = _deadline(postmortem.review_due_at) if postmortem.review_due_at else "none required"
    return _append(
        postmortem.incident_id,
        message=f"Post-incident review deadline is now {when} "
        f"({incident.severity}, resolved {timezone.localtime(incident.resolved_at):%Y-%m-%d})",
        actor=None,
        data={"postmortem_id": postmortem.pk, "action": "deadline_changed"},
    )


def review_deadline_missed_event(postmortem: Postmortem) -> TimelineEvent:
    """The review deadline passed without a review (flagged once)."""
    return _append(
        postmortem.incident_id,
        message="Post-incident review deadline passed "
        f"({_deadline(postmortem.review_due_at)}) without a review",
        actor=None,
        data={"postmortem_id": postmortem.pk, "action": "review_deadline_missed"},
    )


def postmortem_status_changed_event(
    postmortem: Postmortem,
    *,
    from_status: str,
    actor=None,
    reason: str = "",
    overridden: list[str] | None = None,
) -> TimelineEvent:
    """The postmortem moved from `from_status` to its current status (a waiver says why; a
    publication over concerns, such as a review not yet held, names them and who overrode)."""
    message = STATUS_MESSAGES[postmortem.status]
    if reason:
        message += f": {reason}"
    data = {"postmortem_id": postmortem.pk, "from": from_status, "to": postmortem.status}
    if overridden:
        data["overridden"] = list(overridden)
    return _append(postmortem.incident_id, message=message, actor=actor, data=data)


# --- action items -----------------------------------------------------------------------------


def _item_event(item: ActionItem, *, message: str, actor, action: str, **data) -> TimelineEvent:
    return _append(
        item.postmortem.incident_id,
        message=message,
        actor=actor,
        data={
            "postmortem_id": item.postmortem_id,
            "action_item_id": item.pk,
            "action": action,
            **data,
        },
    )


def action_item_added_event(item: ActionItem, *, description: str, actor=None) -> TimelineEvent:
    """An action item was added (`description`: its owner, due date and gate, in words)."""
    return _item_event(
        item,
        message=f"Action item added: {item.title} ({description})",
        actor=actor,
        action="action_item_added",
    )


def action_item_updated_event(item: ActionItem, *, changed: list[str], actor=None) -> TimelineEvent:
    """Fields of an action item changed (`changed`: their names)."""
    changed = sorted(changed)
    return _item_event(
        item,
        message=f"Action item updated: {item.title} ({', '.join(changed)})",
        actor=actor,
        action="action_item_updated",
        changed=changed,
    )


def action_item_done_event(item: ActionItem, *, note: str = "", actor=None) -> TimelineEvent:
    """An action item was completed (`note`: how it was verified, if it was)."""
    return _item_event(
        item,
        message=f"Action item done: {item.title}{note}",
        actor=actor,
        action="action_item_done",
    )


def action_item_verification_failed_event(
    item: ActionItem, *, run_id: int, check_status: str, summary: str, actor=None
) -> TimelineEvent:
    """The item's gating check did not pass: the item stays open, with what the check found."""
    return _item_event(
        item,
        message=f"Action item not done: {item.title}: check {item.check_key} on "
        f"{item.check_target} is {check_status.upper()} ({summary})",
        actor=actor,
        action="action_item_verification_failed",
        run_id=run_id,
        check_status=check_status,
    )


def action_item_holding_event(
    item: ActionItem, *, run_id: int, until, summary: str, actor=None
) -> TimelineEvent:
    """The gating check passed, but must go on passing over the item's window."""
    return _item_event(
        item,
        message=f"Action item check passed: {item.title}: {item.check_key} on "
        f"{item.check_target} ({summary}); it must go on passing until {_deadline(until)}, "
        "when it runs again",
        actor=actor,
        action="action_item_verification_holding",
        run_id=run_id,
        check_status="ok",
    )


# --- review meetings --------------------------------------------------------------------------


def _late_note(review: Review) -> str:
    due = review.postmortem.review_due_at
    if due and review.starts_at > due:
        return f" (after the deadline of {fmt_when(due)})"
    return ""


def _review_event(review: Review, *, message: str, actor, action: str) -> TimelineEvent:
    return _append(
        review.postmortem.incident_id,
        message=message,
        actor=actor,
        data={
            "postmortem_id": review.postmortem_id,
            "review_id": review.pk,
            "action": action,
            "starts_at": review.starts_at.isoformat(),
            "sequence": review.sequence,
        },
    )


def review_scheduled_event(review: Review, *, invited: int, actor=None) -> TimelineEvent:
    """A review meeting was scheduled and `invited` people invited."""
    return _review_event(
        review,
        message=f"Post-incident review scheduled for {fmt_when(review.starts_at)}"
        f"{_late_note(review)}; {invited} invited",
        actor=actor,
        action="review_scheduled",
    )


def review_rescheduled_event(
    review: Review, *, previous: datetime.datetime, actor=None
) -> TimelineEvent:
    """The meeting moved from `previous` to its current start."""
    return _review_event(
        review,
        message=f"Post-incident review moved from {fmt_when(previous)} to "
        f"{fmt_when(review.starts_at)}{_late_note(review)}",
        actor=actor,
        action="review_rescheduled",
    )


def review_cancelled_event(review: Review, *, reason: str = "", actor=None) -> TimelineEvent:
    """The meeting was cancelled (with the reason given, if any)."""
    return _review_event(
        review,
        message=f"Post-incident review of {fmt_when(review.starts_at)} cancelled"
        + (f": {reason}" if reason else ""),
        actor=actor,
        action="review_cancelled",
    )


def review_held_event(review: Review, *, actor=None) -> TimelineEvent:
    """The meeting took place."""
    return _review_event(
        review, message="Post-incident review held", actor=actor, action="review_held"
    )


def review_mail_undelivered_event(review: Review, *, what: str, actor=None) -> TimelineEvent:
    """The review's `what` (invitation, update, reminder) reached nobody for the people left
    out (`review.left_out`: no e-mail address), each named with what to fix."""
    names = ", ".join(f"{p['name']} ({p['reason']})" for p in review.left_out)
    return _append(
        review.postmortem.incident_id,
        message=(
            f"Review {what} not delivered: no destination for {names}: no e-mail address; "
            f"set it in {USERS_ADMIN}"
        ),
        actor=actor,
        data={
            "postmortem_id": review.postmortem_id,
            "review_id": review.pk,
            "action": f"review_{what}_not_delivered",
            "not_delivered": "no destination",
            "left_out": review.left_out,
            "sequence": review.sequence,
        },
    )
