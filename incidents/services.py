"""Every write to an incident: declare, transition, change, staff, note, report.

Each service runs in one transaction, locks the incident row when it changes it, records its
timeline event in that same transaction, and sends its lifecycle signal after commit.
"""

from __future__ import annotations

import datetime
import re
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import BigIntegerField, Max
from django.db.models.functions import Cast, Substr
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.text import slugify

from config.kernel.errors import Conflict, QuellError

from . import events, permissions, signals
from .models import (
    ASSESSMENT_FIELDS,
    OPEN_STATUSES,
    DetectionSource,
    EventKind,
    Incident,
    Kind,
    ResponderAssignment,
    ResponderRole,
    Status,
    TimelineEvent,
)
from .severity import Severity, severity_policy


class IncidentError(QuellError):
    """A request the incident rules refuse; `field` names the input at fault when there is one."""


class InvalidTransition(IncidentError):
    code = "invalid_transition"


class IncidentConflict(IncidentError, Conflict):
    """Somebody else changed the incident first; re-read it and decide again."""


# The lifecycle. Anything else is refused with the allowed targets named.
ALLOWED_TRANSITIONS: dict[str, tuple[str, ...]] = {
    Status.INVESTIGATING: (Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED),
    # A wrong hypothesis sends an incident back to investigating.
    Status.IDENTIFIED: (Status.INVESTIGATING, Status.MONITORING, Status.RESOLVED),
    # A mitigation that does not hold sends it back.
    Status.MONITORING: (Status.INVESTIGATING, Status.IDENTIFIED, Status.RESOLVED),
    # Resolved incidents reopen (to investigating) or close once the postmortem is done.
    Status.RESOLVED: (Status.INVESTIGATING, Status.CLOSED),
    Status.CLOSED: (),
}

# Which lifecycle time each target status stamps (first time only; reopen clears the later ones).
_STAMPS = {
    Status.IDENTIFIED: "identified_at",
    Status.MONITORING: "mitigated_at",
    Status.RESOLVED: "resolved_at",
    Status.CLOSED: "closed_at",
}

EDITABLE_FIELDS = (
    "title",
    "description",
    "kind",
    "detected_by",
    *ASSESSMENT_FIELDS,
    "bridge_url",
)


def _enforce_close_guards(incident: Incident) -> None:
    """Refuse to close while a guard objects (settings.QUELL_CLOSE_GUARDS, dotted paths).

    Closing means the follow-up is done: with the postmortems app that is its postmortem
    published or waived. The guards are named in settings so that this app imports none of
    the apps that judge it.
    """
    for path in settings.QUELL_CLOSE_GUARDS:
        objection = import_string(path)(incident)
        if objection:
            raise InvalidTransition(objection, field="status")


def allowed_transitions(status: str) -> tuple[str, ...]:
    """The statuses an incident in `status` may move to."""
    return ALLOWED_TRANSITIONS[Status(status)]


def required_roles(severity: str) -> list[str]:
    """Roles the severity policy requires."""
    return list(severity_policy(severity).required_roles)


# Advisory lock class for channel names (the second key is the hashed base name).
CHANNEL_NAME_LOCK_CLASS = 0x51C4


def channel_name_for(*, title: str, declared_at: datetime.datetime) -> str:
    """`#incident-YYYY-MM-DD-<slug>`, unique: a numeric suffix separates same-day namesakes.

    Call inside the declaring transaction: concurrent declares of one name wait for each other
    (an advisory lock held to commit), so each sees the names already taken and none races to
    the unique constraint. The next suffix comes from one query, however many namesakes exist.
    """
    day = timezone.localtime(declared_at).date().isoformat()
    slug = slugify(title)[:40].strip("-") or "database-issue"
    base = f"#incident-{day}-{slug}"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [CHANNEL_NAME_LOCK_CLASS, base]
        )
    namesakes = Incident.objects.filter(channel_name__startswith=base)
    highest = namesakes.filter(channel_name__regex=rf"^{re.escape(base)}-[0-9]{{1,9}}$").aggregate(
        n=Max(Cast(Substr("channel_name", len(base) + 2), BigIntegerField()))
    )["n"]
    if highest is None and not namesakes.filter(channel_name=base).exists():
        return base
    return f"{base}-{max(highest or 1, 1) + 1}"


def _bridge_url_for(incident: Incident) -> str:
    template = settings.QUELL_BRIDGE_URL_TEMPLATE
    if not template or not severity_policy(incident.severity).bridge:
        return ""
    return template.format(slug=incident.slug, id=incident.pk)


def _lock(incident_id: int) -> Incident:
    try:
        return Incident.objects.select_for_update().get(pk=incident_id)
    except Incident.DoesNotExist:
        raise IncidentError(f"Incident {incident_id} does not exist.", field="incident") from None


def _validate_percent(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        pct = Decimal(str(value))
    except ArithmeticError:
        raise IncidentError(
            "Must be a number between 0 and 100.", field="users_affected_percent"
        ) from None
    if not Decimal(0) <= pct <= Decimal(100):
        raise IncidentError("Must be between 0 and 100.", field="users_affected_percent")
    return pct


@transaction.atomic
def incident_declare(
    *,
    title: str,
    severity: str,
    kind: str = Kind.OTHER,
    description: str = "",
    detection_source: str = DetectionSource.INTERNAL_REPORT,
    detected_by: str = "",
    detected_at: datetime.datetime | None = None,
    actor=None,
    actor_label: str = "",
    **assessment: Any,
) -> Incident:
    """Open a new incident in `investigating`, with its channel name, bridge and first event."""
    title = (title or "").strip()
    if not title:
        raise IncidentError("A title is required.", field="title")
    if severity not in Severity.values:
        raise IncidentError(
            f"Severity must be one of {', '.join(Severity.values)}.", field="severity"
        )
    if kind not in Kind.values:
        raise IncidentError(f"Kind must be one of {', '.join(Kind.values)}.", field="kind")
    if detection_source not in DetectionSource.values:
        raise IncidentError(
            f"Detection source must be one of {', '.join(DetectionSource.values)}.",
            field="detection_source",
        )
    unknown = set(assessment) - set(EDITABLE_FIELDS)
    if unknown:
        raise IncidentError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if "users_affected_percent" in assessment:
        assessment["users_affected_percent"] = _validate_percent(
            assessment["users_affected_percent"]
        )
    now = timezone.now()
    if detected_at and detected_at > now + datetime.timedelta(minutes=5):
        raise IncidentError("Detection time cannot be in the future.", field="detected_at")
    user = actor if actor is not None and actor.is_authenticated else None
    incident = Incident(
        title=title,
        slug=slugify(title)[:60] or "database-issue",
        severity=severity,
        kind=kind,
        description=description,
        detection_source=detection_source,
        detected_by=detected_by or (user.get_username() if user else actor_label),
        declared_by=user,
        detected_at=detected_at or now,
        declared_at=now,
        channel_name=channel_name_for(title=title, declared_at=now),
        **assessment,
    )
    incident.save()
    if not incident.bridge_url:
        bridge = _bridge_url_for(incident)
        if bridge:
            incident.bridge_url = bridge
            incident.save(update_fields=["bridge_url"])
    events.declared_event(incident, actor=actor, actor_label=actor_label)
    signals.send_after_commit(
        signals.incident_declared, incident_id=incident.pk, actor_id=getattr(user, "pk", None)
    )
    return incident


def incident_acknowledge(*, incident_id: int, actor=None) -> Incident:
    """Stamp the acknowledgement time (first time only) and record it."""
    with transaction.atomic():
        incident = _lock(incident_id)
        if incident.acknowledged_at is None:
            incident.acknowledged_at = timezone.now()
            incident.save(update_fields=["acknowledged_at", "updated_at"])
            events.acknowledged_event(incident, actor=actor)
    return incident


@transaction.atomic
def incident_transition(
    *,
    incident_id: int,
    to_status: str,
    actor=None,
    reason: str = "",
    expected_status: str | None = None,
    actor_label: str = "",
) -> Incident:
    """Move an incident along its lifecycle under a row lock.

    `expected_status` is the status the caller saw. If another transition committed in between,
    the caller's decision was made on stale information: refuse with IncidentConflict instead
    of applying it on top.
    """
    if to_status not in Status.values:
        raise IncidentError(f"Status must be one of {', '.join(Status.values)}.", field="status")
    incident = _lock(incident_id)
    if expected_status is not None and incident.status != expected_status:
        raise IncidentConflict(
            f"Incident #{incident.pk} is now {incident.status}, not {expected_status}: "
            "somebody changed it first. Reload and try again."
        )
    if to_status == incident.status:
        # A repeat of a move that already happened (a double submit, or a concurrent request
        # that lost the race): a conflict with the current state, not a rule violation.
        raise IncidentConflict(
            f"Incident #{incident.pk} is already {incident.status}: somebody changed it first "
            "or the request was sent twice."
        )
    allowed = allowed_transitions(incident.status)
    if to_status not in allowed:
        allowed_text = ", ".join(allowed) if allowed else "none (closed incidents are final)"
        raise InvalidTransition(
            f"Cannot move incident #{incident.pk} from {incident.status} to {to_status}. "
            f"Allowed from {incident.status}: {allowed_text}.",
            field="status",
        )
    if to_status == Status.CLOSED:
        _enforce_close_guards(incident)
    from_status = incident.status
    now = timezone.now()
    incident.status = to_status
    update = ["status", "updated_at"]
    reopened = from_status == Status.RESOLVED and to_status == Status.INVESTIGATING
    if reopened:
        # The earlier resolution stays on the timeline; the incident is open again.
        incident.resolved_at = None
        update.append("resolved_at")
    stamp = _STAMPS.get(to_status)
    if stamp and getattr(incident, stamp) is None:
        setattr(incident, stamp, now)
        update.append(stamp)
    if to_status == Status.RESOLVED and incident.mitigated_at is None:
        incident.mitigated_at = now
        update.append("mitigated_at")
    if incident.acknowledged_at is None:
        # Working an incident acknowledges it.
        incident.acknowledged_at = now
        update.append("acknowledged_at")
    incident.save(update_fields=update)
    events.status_changed_event(
        incident,
        from_status=from_status,
        to_status=to_status,
        actor=actor,
        reason=reason,
        actor_label=actor_label,
    )
    actor_id = getattr(actor, "pk", None)
    signals.send_after_commit(
        signals.incident_status_changed,
        incident_id=incident.pk,
        actor_id=actor_id,
        from_status=from_status,
        to_status=to_status,
    )
    if to_status == Status.RESOLVED:
        signals.send_after_commit(
            signals.incident_resolved,
            incident_id=incident.pk,
            actor_id=actor_id,
            from_status=from_status,
        )
    elif to_status == Status.CLOSED:
        signals.send_after_commit(
            signals.incident_closed, incident_id=incident.pk, actor_id=actor_id
        )
    elif reopened:
        signals.send_after_commit(
            signals.incident_reopened, incident_id=incident.pk, actor_id=actor_id, reason=reason
        )
    return incident


@transaction.atomic
def incident_change_severity(
    *, incident_id: int, severity: str, actor=None, reason: str = ""
) -> Incident:
    """Re-grade an incident; a bridge is added when it becomes SEV1/SEV2."""
    if severity not in Severity.values:
        raise IncidentError(
            f"Severity must be one of {', '.join(Severity.values)}.", field="severity"
        )
    incident = _lock(incident_id)
    if incident.status == Status.CLOSED:
        raise IncidentError("A closed incident cannot be re-graded.", field="severity")
    if incident.severity == severity:
        return incident
    from_severity = incident.severity
    incident.severity = severity
    update = ["severity", "updated_at"]
    if not incident.bridge_url:
        bridge = _bridge_url_for(incident)
        if bridge:
            incident.bridge_url = bridge
            update.append("bridge_url")
    incident.save(update_fields=update)
    events.severity_changed_event(
        incident, from_severity=from_severity, to_severity=severity, actor=actor, reason=reason
    )
    signals.send_after_commit(
        signals.incident_severity_changed,
        incident_id=incident.pk,
        actor_id=getattr(actor, "pk", None),
        from_severity=from_severity,
        to_severity=severity,
    )
    return incident


def _jsonable(value):
    if isinstance(value, Decimal):
        return str(value)
    return value


@transaction.atomic
def incident_update(*, incident_id: int, actor=None, **changes: Any) -> Incident:
    """Change editable details; records old and new values of what actually changed."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise IncidentError(
            f"Not editable here: {', '.join(sorted(unknown))}. Status and severity have their "
            "own actions."
        )
    if "title" in changes and not (changes["title"] or "").strip():
        raise IncidentError("A title is required.", field="title")
    if "kind" in changes and changes["kind"] not in Kind.values:
        raise IncidentError(f"Kind must be one of {', '.join(Kind.values)}.", field="kind")
    if "users_affected_percent" in changes:
        changes["users_affected_percent"] = _validate_percent(changes["users_affected_percent"])
    incident = _lock(incident_id)
    if incident.status == Status.CLOSED:
        raise IncidentError("A closed incident cannot be edited; add a note instead.")
    diff = {}
    for name, value in changes.items():
        old = getattr(incident, name)
        if old != value:
            diff[name] = {"from": _jsonable(old), "to": _jsonable(value)}
            setattr(incident, name, value)
    if not diff:
        return incident
    incident.save(update_fields=[*diff, "updated_at"])
    events.fields_changed_event(incident, changes=diff, actor=actor)
    return incident


@transaction.atomic
def role_assign(
    *, incident_id: int, role: str, user, actor=None, role_name: str = ""
) -> ResponderAssignment:
    """Give `user` a role on the incident, relieving its current holder (history is kept).

    `actor` None is Quell itself (demo data, automation); a person must be allowed to grant the
    role (incidents.permissions.role_grant_refusal), else PermissionDenied says who may.
    """
    if role not in ResponderRole.values:
        raise IncidentError(f"Role must be one of {', '.join(ResponderRole.values)}.", field="role")
    role_name = (role_name or "").strip()
    if role == ResponderRole.OTHER and not role_name:
        raise IncidentError("Name the role (for example 'Database specialist').", field="role_name")
    if role != ResponderRole.OTHER:
        role_name = ""
    if user is None or not user.is_active:
        raise IncidentError("Assign an active user.", field="user")
    incident = _lock(incident_id)
    # Checked under the row lock: a concurrent handover cannot let the old IC act twice.
    _check_role_grant(actor, incident, role)
    if incident.status == Status.CLOSED:
        raise IncidentError("A closed incident cannot be staffed.")
    now = timezone.now()
    current = (
        ResponderAssignment.objects.select_related("user")
        .filter(incident=incident, role=role, role_name=role_name, relieved_at__isnull=True)
        .first()
    )
    if current is not None and current.user_id == user.pk:
        return current
    replaced = None
    if current is not None:
        current.relieved_at = now
        current.relieved_by = actor if actor is not None and actor.is_authenticated else None
        current.save(update_fields=["relieved_at", "relieved_by"])
        replaced = current
    try:
        with transaction.atomic():
            assignment = ResponderAssignment.objects.create(
                incident=incident,
                role=role,
                role_name=role_name,
                user=user,
                assigned_at=now,
                assigned_by=actor if actor is not None and actor.is_authenticated else None,
            )
    except IntegrityError:
        raise IncidentConflict("That role was assigned concurrently; reload and retry.") from None
    events.role_assigned_event(assignment, actor=actor, replaced=replaced)
    if role == ResponderRole.INCIDENT_COMMANDER and incident.acknowledged_at is None:
        # A commander taking the incident is its acknowledgement.
        incident.acknowledged_at = now
        incident.save(update_fields=["acknowledged_at", "updated_at"])
    signals.send_after_commit(
        signals.incident_role_assigned,
        incident_id=incident.pk,
        actor_id=getattr(actor, "pk", None),
        role=role,
        role_name=role_name,
        user_id=user.pk,
    )
    return assignment


def _check_role_grant(actor, incident: Incident, role: str) -> None:
    if actor is None:
        return
    refusal = permissions.role_grant_refusal(actor, incident, role)
    if refusal:
        raise PermissionDenied(refusal)


@transaction.atomic
def role_relieve(*, assignment_id: int, actor=None) -> ResponderAssignment:
    """End an assignment without a successor (the role then shows as missing if required)."""
    assignment = (
        ResponderAssignment.objects.select_related("user")
        .select_for_update(of=("self",))
        .filter(pk=assignment_id)
        .first()
    )
    if assignment is None:
        raise IncidentError(f"Assignment {assignment_id} does not exist.")
    if assignment.relieved_at is not None:
        return assignment
    incident = _lock(assignment.incident_id)
    if actor is not None:
        refusal = permissions.role_relieve_refusal(
            actor, incident, role=assignment.role, holder_id=assignment.user_id
        )
        if refusal:
            raise PermissionDenied(refusal)
    if incident.status == Status.CLOSED:
        raise IncidentError("A closed incident's staffing is final; add a note instead.")
    assignment.relieved_at = timezone.now()
    assignment.relieved_by = actor if actor is not None and actor.is_authenticated else None
    assignment.save(update_fields=["relieved_at", "relieved_by"])
    events.role_relieved_event(assignment, actor=actor)
    return assignment


def timeline_append(
    *,
    incident_id: int,
    message: str,
    kind: str = EventKind.NOTE,
    actor=None,
    actor_label: str = "",
    data: dict | None = None,
    occurred_at: datetime.datetime | None = None,
) -> TimelineEvent:
    """Add an event to an incident's timeline: notes, and other apps' records."""
    message = (message or "").strip()
    if not message:
        raise IncidentError("A message is required.", field="message")
    if kind not in EventKind.values:
        raise IncidentError(f"Kind must be one of {', '.join(EventKind.values)}.", field="kind")
    if occurred_at and occurred_at > timezone.now() + datetime.timedelta(minutes=5):
        raise IncidentError("An event cannot happen in the future.", field="occurred_at")
    if not Incident.objects.filter(pk=incident_id).exists():
        raise IncidentError(f"Incident {incident_id} does not exist.", field="incident")
    incident = Incident(pk=incident_id)
    return events.note_event(
        incident,
        message=message,
        actor=actor,
        actor_label=actor_label,
        kind=kind,
        data=data,
        occurred_at=occurred_at,
    )


REPORT_SOURCES = (DetectionSource.USER_REPORT, DetectionSource.INTERNAL_REPORT)


@transaction.atomic
def report_submit(
    *,
    source: str,
    summary: str,
    details: str = "",
    reporter: str = "",
    incident_id: int | None = None,
    severity: str = Severity.SEV3,
    kind: str = Kind.OTHER,
    actor=None,
) -> tuple[Incident, TimelineEvent, bool]:
    """A manual report (playbook: Manual Reports): a note on an open incident, or a new one.

    Returns (incident, the report's event, whether the incident was created).
    """
    if source not in REPORT_SOURCES:
        raise IncidentError("Source must be user_report or internal_report.", field="source")
    summary = (summary or "").strip()
    if not summary:
        raise IncidentError("Summarise what was observed.", field="summary")
    reporter = reporter or (actor.get_username() if actor is not None else "")
    data = {"source": source, "reporter": reporter, "summary": summary, "details": details}
    label = "User report" if source == DetectionSource.USER_REPORT else "Internal report"
    if incident_id is not None:
        incident = _lock(incident_id)
        if incident.status not in OPEN_STATUSES:
            raise IncidentError(
                f"Incident #{incident.pk} is {incident.status}; reports attach to open "
                "incidents only. Declare a new one or reopen it.",
                field="incident",
            )
        return incident, _report_event(incident, label, reporter, summary, actor, data), False
    incident = incident_declare(
        title=summary[:200],
        severity=severity,
        kind=kind,
        description=details,
        detection_source=source,
        detected_by=reporter,
        actor=actor,
    )
    return incident, _report_event(incident, label, reporter, summary, actor, data), True


def _report_event(incident, label, reporter, summary, actor, data) -> TimelineEvent:
    return events.note_event(
        incident,
        message=f"{label} from {reporter or 'unknown'}: {summary}",
        kind=EventKind.REPORT,
        actor=actor,
        data=data,
    )
