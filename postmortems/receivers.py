"""Reactions to the incident lifecycle (incidents.signals, sent after commit)."""

from __future__ import annotations

import logging

from incidents.models import Incident
from incidents.severity import severity_policy

from . import services
from .models import Postmortem

logger = logging.getLogger(__name__)


def on_incident_resolved(sender, *, incident_id: int, actor_id=None, **kwargs) -> None:
    """Resolution opens the postmortem draft (per severity policy) or refreshes its deadline."""
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return
    existing = Postmortem.objects.filter(incident_id=incident_id).first()
    if existing is not None:
        # Reopened and resolved again: the deadline counts from the new resolution.
        services.postmortem_recompute_deadline(postmortem_id=existing.pk)
        return
    if not severity_policy(incident.severity).postmortem_required:
        return
    try:
        services.postmortem_create(incident_id=incident_id, actor=_actor(actor_id))
    except services.PostmortemError:
        # Reopened between the resolution and this receiver: the next resolution creates it.
        logger.info("Incident %s is no longer resolved; postmortem not created", incident_id)


def on_incident_severity_changed(sender, *, incident_id: int, **kwargs) -> None:
    """A re-graded, resolved incident gets the review deadline of its new severity."""
    postmortem = Postmortem.objects.filter(incident_id=incident_id).first()
    if postmortem is not None:
        services.postmortem_recompute_deadline(postmortem_id=postmortem.pk)


def _actor(actor_id):
    if actor_id is None:
        return None
    from django.contrib.auth import get_user_model

    return get_user_model().objects.filter(pk=actor_id).first()
