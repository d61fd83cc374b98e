"""Reads: postmortems with what their pages show, response times, timeline choices, action items
and reviews."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from incidents.models import Incident, TimelineEvent

from .models import (
    CLOSED_ACTION_STATUSES,
    ActionItem,
    Postmortem,
    PostmortemStatus,
    Review,
    ReviewStatus,
)


def postmortem_list(*, filters: dict | None = None) -> QuerySet[Postmortem]:
    """Postmortems, newest first, with their incidents."""
    qs = Postmortem.objects.select_related("incident", "updated_by")
    if filters:
        qs = qs.filter(**filters)
    return qs


def postmortem_get(*, postmortem_id: int) -> Postmortem:
    """One postmortem with its incident and authors."""
    return postmortem_list().select_related("published_by", "waived_by").get(pk=postmortem_id)


def postmortem_for_incident(*, incident_id: int) -> Postmortem | None:
    """The incident's postmortem, if it has one."""
    return postmortem_list().filter(incident_id=incident_id).first()


@dataclass(frozen=True)
class Span:
    label: str
    start_label: str
    end_label: str
    start: datetime.datetime | None
    end: datetime.datetime | None

    @property
    def duration(self) -> datetime.timedelta | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


def response_times(incident: Incident) -> dict[str, list[Span]]:
    """Detect -> acknowledge -> mitigate -> resolve: each stage, and cumulative from detection."""
    detected, ack = incident.detected_at, incident.acknowledged_at
    mitigated, resolved = incident.mitigated_at, incident.resolved_at
    stages = [
        Span("Detect to acknowledge", "detected", "acknowledged", detected, ack),
        Span("Acknowledge to mitigate", "acknowledged", "mitigated", ack, mitigated),
        Span("Mitigate to resolve", "mitigated", "resolved", mitigated, resolved),
    ]
    totals = [
        Span("Time to acknowledge", "detected", "acknowledged", detected, ack),
        Span("Time to mitigate", "detected", "mitigated", detected, mitigated),
        Span("Time to resolve", "detected", "resolved", detected, resolved),
    ]
    return {"stages": stages, "totals": totals}


def timeline_choices(postmortem: Postmortem, selection: dict | None = None) -> list[dict]:
    """The incident's full timeline, each event marked chosen or not, with its annotation."""
    selection = (postmortem.timeline_selection if selection is None else selection) or {}
    events = TimelineEvent.objects.filter(incident_id=postmortem.incident_id).select_related(
        "actor"
    )
    return [
        {
            "event": event,
            "selected": str(event.pk) in selection,
            "note": selection.get(str(event.pk), ""),
        }
        for event in events.order_by("occurred_at", "id")
    ]


def selected_timeline(postmortem: Postmortem, selection: dict | None = None) -> list[dict]:
    """Only the chosen entries, in time order, with their annotations."""
    selection = postmortem.timeline_selection if selection is None else selection
    ids = [int(k) for k in (selection or {})]
    events = (
        TimelineEvent.objects.filter(incident_id=postmortem.incident_id, pk__in=ids)
        .select_related("actor")
        .order_by("occurred_at", "id")
    )
    return [{"event": e, "note": selection.get(str(e.pk), "")} for e in events]


def current_review(postmortem: Postmortem) -> Review | None:
    """The scheduled review, else the latest held one, else the latest cancelled one."""
    # Sorted here, not in SQL, so that a prefetched `reviews` is used as is (lists: no N+1).
    reviews = sorted(postmortem.reviews.all(), key=lambda r: (r.created_at, r.pk), reverse=True)
    for status in (ReviewStatus.SCHEDULED, ReviewStatus.HELD, ReviewStatus.CANCELLED):
        for review in reviews:
            if review.status == status:
                return review
    return None


# The sections a published postmortem is read for; publishing with one empty asks to confirm.
CORE_SECTIONS = ("summary", "impact", "root_cause")


def publish_concerns(postmortem: Postmortem) -> list[str]:
    """Why publishing now would be premature (each a sentence), or [] when nothing is: the
    review its severity requires has not been held, core sections are empty."""
    concerns = []
    if postmortem.review_due_at is not None:
        review = current_review(postmortem)
        if review is None or review.status != ReviewStatus.HELD:
            when = ""
            if review is not None and review.status == ReviewStatus.SCHEDULED:
                when = f" (scheduled for {timezone.localtime(review.starts_at):%Y-%m-%d %H:%M %Z})"
            concerns.append(f"the review has not been held{when}")
    empty = [name for name in CORE_SECTIONS if not (getattr(postmortem, name) or "").strip()]
    if empty:
        concerns.append("empty: " + ", ".join(name.replace("_", " ") for name in empty))
    return concerns


def review_is_late(postmortem: Postmortem, *, now: datetime.datetime | None = None) -> bool:
    """Deadline passed with no review held or scheduled on time (waived ones are exempt)."""
    now = now or timezone.now()
    if postmortem.review_due_at is None or postmortem.status == PostmortemStatus.WAIVED:
        return False
    if now <= postmortem.review_due_at:
        return False
    return not any(
        review.status in (ReviewStatus.SCHEDULED, ReviewStatus.HELD)
        and review.starts_at <= postmortem.review_due_at
        for review in postmortem.reviews.all()
    )


def review_list(*, filters: dict | None = None) -> QuerySet[Review]:
    """Reviews, latest first, with their postmortems and incidents."""
    qs = Review.objects.select_related("postmortem", "postmortem__incident", "organizer")
    if filters:
        qs = qs.filter(**filters)
    return qs


def action_item_list(
    *, filters: dict | None = None, overdue: bool = False, today: datetime.date | None = None
) -> QuerySet[ActionItem]:
    """Action items with what a list row shows; `overdue` keeps open items past their date."""
    qs = ActionItem.objects.select_related(
        "postmortem", "postmortem__incident", "owner", "check_target"
    )
    if filters:
        qs = qs.filter(**filters)
    if overdue:
        qs = qs.filter(due_date__lt=today or timezone.localdate()).exclude(
            status__in=CLOSED_ACTION_STATUSES
        )
    return qs.order_by("due_date", "id")


def action_items_overdue_count(*, user=None) -> int:
    """How many open items are past their due date (for a user, when given)."""
    qs = action_item_list(overdue=True)
    if user is not None:
        qs = qs.filter(owner=user)
    return qs.count()


def action_items_summary() -> dict:
    """All action items, the open ones, and the open ones past their due date (insights and
    /metrics, through incidents.registry)."""
    items = ActionItem.objects.all()
    open_items = items.exclude(status__in=CLOSED_ACTION_STATUSES)
    return {
        "total": items.count(),
        "open": open_items.count(),
        "overdue": open_items.filter(due_date__lt=timezone.localdate()).count(),
    }
