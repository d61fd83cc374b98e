"""Comms' timeline events: one small function per kind of record comms puts on an incident.

Each builds the message and the data of its event and appends it through incidents' public
`timeline_append`, inside the caller's transaction. The data keys are comms' own: no other app
reads or filters on them (what comms must look up later lives in its models, e.g.
`UndeliveredInitialNotification`).
"""

from __future__ import annotations

from config.kernel.actors import user_or_none
from incidents.models import EventKind, Incident, TimelineEvent
from incidents.services import timeline_append

from . import rendering, selectors
from .models import Audience, Component, Delivery, StatusUpdate

ACTOR_LABEL = "quell"
NO_DESTINATION = "no destination"


def _append(incident_id: int, *, message: str, data: dict, actor=None, actor_label: str = ""):
    user = user_or_none(actor)
    return timeline_append(
        incident_id=incident_id,
        kind=EventKind.COMMS,
        message=message,
        actor=user,
        actor_label="" if user else (actor_label or ACTOR_LABEL),
        data=data,
    )


def component_state_changed_event(
    component: Component, *, incident_id: int, from_state: str, actor=None
) -> TimelineEvent:
    """A status page component changed state on behalf of an incident."""
    return _append(
        incident_id,
        message=f"Status page: {component.name} is now {component.get_state_display()}",
        actor=actor,
        data={"component_id": component.pk, "from": from_state, "to": component.state},
    )


def delivery_failed_event(delivery: Delivery) -> TimelineEvent:
    """A delivery gave up after its last attempt."""
    return _append(
        delivery.incident_id,
        message=(
            f"Delivery to {delivery.destination} failed after {delivery.attempts} "
            f"attempt(s): {delivery.error}"
        ),
        data={"delivery_id": delivery.pk, "state": "failed", "error": delivery.error},
    )


def delivery_retried_event(delivery: Delivery, *, actor=None) -> TimelineEvent:
    """A person asked to send a failed delivery again."""
    return _append(
        delivery.incident_id,
        message=f"Retrying the failed delivery to {delivery.destination}",
        actor=actor,
        data={"delivery_id": delivery.pk, "state": "retry"},
    )


def update_published_event(
    update: StatusUpdate,
    *,
    destinations: list[str],
    component_states: dict,
    actor=None,
    actor_label: str = "",
) -> TimelineEvent:
    """A status update went out; an internal one with no destination says it reached nobody
    and what to configure (an external one still reaches the status page)."""
    message = f"{update.get_audience_display()} update published: {update.subject}"
    data = {
        "update_id": update.pk,
        "audience": update.audience,
        "status": update.status,
        "template": update.template.key if update.template_id else None,
        "destinations": list(destinations),
        "component_states": component_states,
    }
    if update.audience == Audience.INTERNAL and not destinations:
        gap = selectors.internal_channel_gap(update.incident) or ""
        message += f". Not delivered: {NO_DESTINATION}. {gap}".rstrip()
        data["not_delivered"] = NO_DESTINATION
    return _append(
        update.incident_id, message=message, actor=actor, actor_label=actor_label, data=data
    )


def initial_notification_undelivered_event(incident: Incident) -> TimelineEvent:
    """The automatic initial notification reached nobody: no internal channel for it."""
    gap = selectors.internal_channel_gap(incident) or ""
    return _append(
        incident.pk,
        message=f"Initial notification not delivered: {NO_DESTINATION}. {gap}".strip(),
        data={
            "initial_notification": "not delivered",
            "not_delivered": NO_DESTINATION,
            "destinations": [],
        },
    )


def _reminder_data(due: selectors.UpdateDue, owner, destinations: list[str]) -> dict:
    return {
        "reminder": True,
        "due_at": due.due_at.isoformat(),
        "reminded_user_id": owner.pk if owner else None,
        "destinations": list(destinations),
    }


def _due_text(due: selectors.UpdateDue) -> str:
    return f"{due.reason} was due at {rendering.fmt_time(due.due_at)}"


def _who(owner) -> str:
    return owner.get_username() if owner else "the Communications Lead"


def reminder_sent_event(
    incident: Incident, *, due: selectors.UpdateDue, owner, destinations: list[str]
) -> TimelineEvent:
    """A next-update reminder went to the Communications Lead (or the Commander)."""
    return _append(
        incident.pk,
        message=f"Reminder: {_due_text(due)}; reminded {_who(owner)}",
        data=_reminder_data(due, owner, destinations),
    )


def reminder_undelivered_event(
    incident: Incident, *, due: selectors.UpdateDue, owner, subject: str
) -> TimelineEvent:
    """A reminder was due but reached nobody: say so, and what to configure, instead of
    "reminded X"."""
    who = _who(owner)
    gap = selectors.reminder_gap(incident) or ""
    message = (
        f"Reminder not delivered: {NO_DESTINATION}. The reminder to {who} that the "
        f"{_due_text(due)} reached nobody. {gap}"
    ).strip()
    data = _reminder_data(due, owner, [])
    data |= {"not_delivered": NO_DESTINATION, "meant_for": who, "subject": subject}
    return _append(incident.pk, message=message, data=data)
