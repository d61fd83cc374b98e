"""Reads: incident lists and details with a fixed number of queries, staffing gaps, timelines."""

from __future__ import annotations

from django.db.models import Prefetch, Q, QuerySet

from .models import OPEN_STATUSES, Incident, ResponderAssignment, TimelineEvent
from .services import required_roles


def active_assignments_queryset() -> QuerySet[ResponderAssignment]:
    """Current role holders, with their users, in assignment order."""
    return ResponderAssignment.objects.filter(relieved_at__isnull=True).select_related("user")


def incident_list(*, filters: dict | None = None) -> QuerySet[Incident]:
    """Incidents, newest first, with what a list row shows prefetched (no N+1)."""
    qs = Incident.objects.select_related("declared_by").prefetch_related(
        Prefetch(
            "assignments", queryset=active_assignments_queryset(), to_attr="active_assignments"
        )
    )
    if filters:
        qs = qs.filter(**filters)
    return qs


def incident_open_list() -> QuerySet[Incident]:
    """Open incidents (investigating, identified, monitoring), worst severity first."""
    return incident_list().filter(status__in=OPEN_STATUSES).order_by("severity", "-declared_at")


def incident_get(*, incident_id: int) -> Incident:
    """One incident with its current roles prefetched."""
    return incident_list().get(pk=incident_id)


def incident_exists(*, incident_id: int) -> bool:
    """Whether an incident with this id exists."""
    return Incident.objects.filter(pk=incident_id).exists()


def assignment_get(*, assignment_id: int) -> ResponderAssignment | None:
    """One assignment with the users it names, or None."""
    return (
        ResponderAssignment.objects.select_related("user", "assigned_by", "relieved_by")
        .filter(pk=assignment_id)
        .first()
    )


def incident_missing_roles(incident: Incident) -> list[str]:
    """Roles the severity policy requires that nobody holds now."""
    active = getattr(incident, "active_assignments", None)
    if active is None:
        active = list(active_assignments_queryset().filter(incident=incident))
    held = {a.role for a in active}
    return [role for role in required_roles(incident.severity) if role not in held]


def assignment_history(*, incident_id: int) -> QuerySet[ResponderAssignment]:
    """Every assignment ever made on the incident, current and relieved."""
    return ResponderAssignment.objects.filter(incident_id=incident_id).select_related(
        "user", "assigned_by", "relieved_by"
    )


def timeline_for(
    *, incident_id: int, kinds: list[str] | None = None, newest_first: bool = False
) -> QuerySet[TimelineEvent]:
    """An incident's timeline, optionally filtered by kind."""
    qs = TimelineEvent.objects.filter(incident_id=incident_id).select_related("actor")
    if kinds:
        qs = qs.filter(kind__in=kinds)
    return qs.order_by("-occurred_at", "-id") if newest_first else qs.order_by("occurred_at", "id")


def incident_search(qs: QuerySet[Incident], term: str) -> QuerySet[Incident]:
    """Case-insensitive match on title, description, channel and detected_by."""
    term = term.strip()
    if not term:
        return qs
    match = (
        Q(title__icontains=term)
        | Q(description__icontains=term)
        | Q(channel_name__icontains=term)
        | Q(detected_by__icontains=term)
    )
    if term.lstrip("#").isdigit():
        match |= Q(pk=int(term.lstrip("#")))
    return qs.filter(match)
