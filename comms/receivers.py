"""Reactions to the incident lifecycle (incidents.signals), connected in CommsConfig.ready."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from incidents import signals
from incidents.dispatch import dispatch

from . import status_cache

logger = logging.getLogger(__name__)


@receiver(signals.incident_declared, dispatch_uid="comms.initial_notification")
def on_incident_declared(sender, *, incident_id, actor_id=None, **kwargs):
    """Queue the initial notification (runs after the declaration committed)."""
    from django.conf import settings

    from .models import Channel
    from .tasks import initial_notification_send

    # Nothing to send to: do not bother the broker (the task would find no channel either).
    if (
        not settings.QUELL_COMMS_NOTIFY_ON_DECLARE
        or not Channel.objects.filter(enabled=True).exists()
    ):
        return
    # A broker outage must not fail a declaration: the task is parked and sent when the broker
    # answers again (incidents.dispatch).
    dispatch(initial_notification_send, incident_id)


@receiver(signals.incident_status_changed, dispatch_uid="comms.status_page_status")
@receiver(signals.incident_severity_changed, dispatch_uid="comms.status_page_severity")
def on_incident_changed(sender, **kwargs):
    """Status and severity change what the status page infers (impact, overdue notices)."""
    try:
        status_cache.invalidate()
    except Exception:
        logger.exception("could not invalidate the status page cache")
