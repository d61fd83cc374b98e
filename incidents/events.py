"""One small function per kind of timeline event.

Every service that changes an incident calls one of these inside its own transaction, so the
change and its record commit or roll back together. Other apps append through
`incidents.services.timeline_append`.
"""

from django.utils import timezone

from .models import EventKind, Incident, ResponderAssignment, TimelineEvent
from .names import display_name


def _record(
    incident: Incident,
    *,
    kind: str,
    message: str,
    actor=None,
    actor_label: str = "",
    data: dict | None = None,
    occurred_at=None,
) -> TimelineEvent:
    return TimelineEvent.objects.create(
        incident=incident,
        kind=kind,
        message=message,
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_label=actor_label or ("" if actor is not None else "system"),
        data=data or {},
        occurred_at=occurred_at or timezone.now(),
    )


def declared_event(incident: Incident, *, actor=None, actor_label: str = "") -> TimelineEvent:
    return _record(
        incident,
        kind=EventKind.DECLARED,
        message=f"Incident declared as {incident.severity} ({incident.get_kind_display()}): "
        f"{incident.title}",
        actor=actor,
        actor_label=actor_label,
        data={
            "severity": incident.severity,
            "kind": incident.kind,
            "detection_source": incident.detection_source,
            "detected_by": incident.detected_by,
            "channel_name": incident.channel_name,
            "bridge_url": incident.bridge_url,
        },
    )


def acknowledged_event(incident: Incident, *, actor=None) -> TimelineEvent:
    return _record(
        incident, kind=EventKind.ACKNOWLEDGED, message="Incident acknowledged", actor=actor
    )


def status_changed_event(
    incident: Incident,
    *,
    from_status: str,
    to_status: str,
    actor=None,
    reason: str = "",
    actor_label: str = "",
) -> TimelineEvent:
    message = f"Status changed from {from_status} to {to_status}"
    if reason:
        message += f": {reason}"
    return _record(
        incident,
        kind=EventKind.STATUS_CHANGED,
        message=message,
        actor=actor,
        actor_label=actor_label,
        data={"from": from_status, "to": to_status, "reason": reason},
    )


def severity_changed_event(
    incident: Incident, *, from_severity: str, to_severity: str, actor=None, reason: str = ""
) -> TimelineEvent:
    message = f"Severity changed from {from_severity} to {to_severity}"
    if reason:
        message += f": {reason}"
    return _record(
        incident,
        kind=EventKind.SEVERITY_CHANGED,
        message=message,
        actor=actor,
        data={"from": from_severity, "to": to_severity, "reason": reason},
    )


def fields_changed_event(incident: Incident, *, changes: dict, actor=None) -> TimelineEvent:
    names = ", ".join(sorted(changes))
    return _record(
        incident,
        kind=EventKind.FIELDS_CHANGED,
        message=f"Updated {names}",
        actor=actor,
        data={"changes": changes},
    )


def _username(user) -> str:
    return display_name(user)


def _assignment_data(assignment: ResponderAssignment) -> dict:
    """Who holds which role: the keys every role event records."""
    return {
        "role": assignment.role,
        "role_name": assignment.role_name,
        "user_id": assignment.user_id,
        "username": assignment.user.get_username(),
    }


def role_assigned_event(
    assignment: ResponderAssignment, *, actor=None, replaced: ResponderAssignment | None = None
) -> TimelineEvent:
    who = display_name(assignment.user)
    granted_by = _username(actor)
    message = f"{who} is now {assignment.role_label}"
    if replaced is not None:
        message += f" (replacing {display_name(replaced.user)})"
    if granted_by and actor.pk != assignment.user_id:
        message += f", assigned by {granted_by}"
    elif granted_by:
        message += ", self-assigned"
    return _record(
        assignment.incident,
        kind=EventKind.ROLE_ASSIGNED,
        message=message,
        actor=actor,
        data={
            **_assignment_data(assignment),
            "granted_by_id": actor.pk if granted_by else None,
            "granted_by": granted_by,
            "replaced_user_id": replaced.user_id if replaced else None,
            "replaced_username": replaced.user.get_username() if replaced else "",
        },
    )


def role_relieved_event(assignment: ResponderAssignment, *, actor=None) -> TimelineEvent:
    who = display_name(assignment.user)
    relieved_by = _username(actor)
    message = f"{who} relieved as {assignment.role_label}"
    if relieved_by and actor.pk != assignment.user_id:
        message += f" by {relieved_by}"
    elif relieved_by:
        message += " (stepped down)"
    return _record(
        assignment.incident,
        kind=EventKind.ROLE_RELIEVED,
        message=message,
        actor=actor,
        data={
            **_assignment_data(assignment),
            "relieved_by_id": actor.pk if relieved_by else None,
            "relieved_by": relieved_by,
        },
    )


def note_event(
    incident: Incident,
    *,
    message: str,
    actor=None,
    actor_label: str = "",
    kind: str = EventKind.NOTE,
    data: dict | None = None,
    occurred_at=None,
) -> TimelineEvent:
    return _record(
        incident,
        kind=kind,
        message=message,
        actor=actor,
        actor_label=actor_label,
        data=data,
        occurred_at=occurred_at,
    )
