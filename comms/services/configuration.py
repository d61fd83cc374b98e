"""Channels (where updates go) and status page components."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from config import outbound
from incidents.severity import Severity

from .. import events, status_cache
from ..models import (
    Channel,
    ChannelAudience,
    ChannelKind,
    Component,
    ComponentState,
    DeliveryKind,
)
from .common import (
    CommsError,
    _change_component_state,
    _channel_delivery,
    _enqueue_on_commit,
    _site_name,
)

if TYPE_CHECKING:  # only in annotations
    from ..models import Delivery

logger = logging.getLogger(__name__)


CHANNEL_FIELDS = (
    "name",
    "kind",
    "audience",
    "severities",
    "url",
    "signing_secret",
    "recipients",
    "include_stakeholders",
    "receives_reminders",
    "enabled",
)


def channel_validate(channel: Channel) -> None:
    """Raise CommsError when a channel's settings cannot work."""
    if not (channel.name or "").strip():
        raise CommsError("A name is required.", field="name")
    if channel.kind not in ChannelKind.values:
        raise CommsError(f"Kind must be one of {', '.join(ChannelKind.values)}.", field="kind")
    if channel.audience not in ChannelAudience.values:
        raise CommsError("Audience must be internal, external or all.", field="audience")
    bad = [s for s in channel.severities or [] if s not in Severity.values]
    if bad or not isinstance(channel.severities, list):
        raise CommsError(
            f"Severities must be a list of {', '.join(Severity.values)}.", field="severities"
        )
    if channel.kind in (ChannelKind.SLACK, ChannelKind.WEBHOOK) and not channel.url:
        raise CommsError("A webhook URL is required.", field="url")
    if channel.url:
        try:
            outbound.validate_destination(channel.url)
        except outbound.OutboundRefused as exc:
            raise CommsError(f"{exc}.", field="url") from None
    if channel.kind == ChannelKind.WEBHOOK and not channel.signing_secret:
        raise CommsError(
            "A signing secret is required for signed webhooks.", field="signing_secret"
        )
    if channel.kind == ChannelKind.EMAIL:
        if not isinstance(channel.recipients, list):
            raise CommsError("Recipients must be a list of addresses.", field="recipients")
        for addr in channel.recipients:
            try:
                validate_email(addr)
            except ValidationError:
                raise CommsError(
                    f"'{addr}' is not an e-mail address.", field="recipients"
                ) from None
        if not channel.recipients and not channel.include_stakeholders:
            raise CommsError(
                "Give recipients or include the stakeholder lists.", field="recipients"
            )
    if Channel.objects.filter(name=channel.name).exclude(pk=channel.pk).exists():
        raise CommsError(f"A channel named '{channel.name}' exists.", field="name")


@transaction.atomic
def channel_save(*, actor, channel_id: int | None = None, **fields) -> Channel:
    """Create or change a channel. Omitted secrets keep their stored value."""
    unknown = set(fields) - set(CHANNEL_FIELDS)
    if unknown:
        raise CommsError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if channel_id is None:
        channel = Channel()
    else:
        channel = Channel.objects.select_for_update().filter(pk=channel_id).first()
        if channel is None:
            raise CommsError(f"Channel {channel_id} does not exist.", field="channel")
    for name, value in fields.items():
        setattr(channel, name, value)
    channel_validate(channel)
    channel.save()
    return channel


@transaction.atomic
def channel_test_send(*, channel_id: int, actor) -> Delivery:
    """Queue a test message to a channel (recorded and retried like any delivery)."""
    channel = Channel.objects.filter(pk=channel_id).first()
    if channel is None:
        raise CommsError(f"Channel {channel_id} does not exist.", field="channel")
    who = actor.get_username() if getattr(actor, "is_authenticated", False) else "Quell"
    subject = f"Test message from {_site_name()}"
    body = f"This is a test of the '{channel.name}' channel, sent by {who}. No action needed."
    row = _channel_delivery(
        channel,
        kind=DeliveryKind.TEST,
        subject=subject,
        body=body,
        extra={"payload": {"event": "test", "text": body}}
        if channel.kind == ChannelKind.WEBHOOK
        else {},
    )
    if row is None:
        raise CommsError("This channel has no recipients to test.", field="recipients")
    row.save()
    _enqueue_on_commit([row.pk])
    return row


@transaction.atomic
def component_save(*, actor, component_id: int | None = None, **fields) -> Component:
    """Create or change a status page component (name, description, targets, order)."""
    allowed = {"name", "description", "targets", "position", "visible"}
    unknown = set(fields) - allowed
    targets = fields.pop("targets", None)
    if unknown:
        raise CommsError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if component_id is None:
        comp = Component()
    else:
        comp = Component.objects.select_for_update().filter(pk=component_id).first()
        if comp is None:
            raise CommsError(f"Component {component_id} does not exist.", field="component")
    for name, value in fields.items():
        setattr(comp, name, value)
    if not (comp.name or "").strip():
        raise CommsError("A name is required.", field="name")
    if Component.objects.filter(name=comp.name).exclude(pk=comp.pk).exists():
        raise CommsError(f"A component named '{comp.name}' exists.", field="name")
    comp.save()
    if targets is not None:
        comp.targets.set(targets)
    transaction.on_commit(status_cache.invalidate)
    return comp


@transaction.atomic
def component_set_state(
    *, component_id: int, state: str, actor, incident_id: int | None = None
) -> Component:
    """Set a component's state by hand (on the incident's timeline when one is named)."""
    if state not in ComponentState.values:
        raise CommsError(f"State must be one of {', '.join(ComponentState.values)}.", field="state")
    comp = Component.objects.select_for_update().filter(pk=component_id).first()
    if comp is None:
        raise CommsError(f"Component {component_id} does not exist.", field="component")
    old = comp.state
    if _change_component_state(comp, state, at=timezone.now()):
        if incident_id is not None:
            events.component_state_changed_event(
                comp, incident_id=incident_id, from_state=old, actor=actor
            )
        transaction.on_commit(status_cache.invalidate)
    return comp


@transaction.atomic
def component_delete(*, component_id: int, actor) -> None:
    """Remove a component from the status page."""
    Component.objects.filter(pk=component_id).delete()
    transaction.on_commit(status_cache.invalidate)
