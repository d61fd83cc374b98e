"""Shared by the comms services: errors, routing helpers and enqueueing after commit."""

from __future__ import annotations

import logging

from django.conf import settings

from incidents.dispatch import Call, call, calls_on_commit
from incidents.models import Incident, Status
from incidents.services import IncidentError

from .. import selectors
from ..models import (
    Channel,
    ChannelKind,
    Component,
    ComponentStateChange,
    Delivery,
    DeliveryState,
)

logger = logging.getLogger(__name__)


class CommsError(IncidentError):
    """A comms request the rules refuse (shown as HTTP 400 with the field at fault)."""


class UnfilledMarkers(CommsError):
    code = "unfilled_markers"


PUBLIC_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED)


def _change_component_state(component: Component, state: str, *, at, status_update=None) -> bool:
    """Move a locked component to `state` and record the change (its uptime history); False
    when it already is in that state."""
    if component.state == state:
        return False
    component.state = state
    component.state_changed_at = at
    component.save(update_fields=["state", "state_changed_at", "updated_at"])
    ComponentStateChange.objects.create(
        component=component, state=state, changed_at=at, status_update=status_update
    )
    return True


def _site_name() -> str:
    """The organisation name shown on the status page and in e-mail."""
    return settings.QUELL_STATUS_PAGE_NAME


def _get_incident(incident_id: int) -> Incident:
    """The incident, or CommsError naming the field."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise CommsError(f"Incident {incident_id} does not exist.", field="incident")
    return incident


def _enqueue_on_commit(delivery_ids: list[int]) -> None:
    """Queue one send task per delivery once the transaction commits. A broker outage parks
    them (incidents.dispatch); the deliveries stay pending, which deliveries_resume finds too."""
    from ..tasks import delivery_send

    calls_on_commit([call(delivery_send, pk) for pk in delivery_ids])


def pending_delivery_calls() -> list[Call]:
    """The tasks that send every delivery waiting for an attempt (for a worker becoming ready)."""
    from django.db.models import Q
    from django.utils import timezone

    from ..tasks import delivery_send

    ids = Delivery.objects.filter(
        Q(state=DeliveryState.PENDING)
        | Q(state=DeliveryState.RETRYING, next_attempt_at__lte=timezone.now())
    ).values_list("pk", flat=True)[:500]
    return [call(delivery_send, pk) for pk in ids]


def _channel_delivery(channel: Channel, **kwargs) -> Delivery | None:
    """An unsaved Delivery to a channel (None for e-mail with nobody to send to)."""
    recipients: list[str] = []
    if channel.kind == ChannelKind.EMAIL:
        incident = kwargs.get("incident")
        if incident is not None:
            recipients = selectors.channel_email_recipients(channel, severity=incident.severity)
        else:
            recipients = sorted(
                {r.strip().lower() for r in channel.recipients or [] if r and r.strip()}
            )
        if not recipients:
            return None
    return Delivery(
        transport=channel.kind,
        channel=channel,
        recipients=recipients,
        destination=channel.name,
        max_attempts=settings.QUELL_COMMS_MAX_ATTEMPTS,
        **kwargs,
    )
