"""Reads of detection state, for the incident page and the API."""

from __future__ import annotations

import dataclasses
import datetime

from django.db.models import Case, IntegerField, Q, Value, When
from django.utils import timezone

from diagnostics.models import IncidentTarget

from .models import Alert, SignalStatus

# How far back the panel shows signals for the incident's targets that went elsewhere.
RECENT_ELSEWHERE = datetime.timedelta(hours=24)
SIGNALS_SHOWN = 50


@dataclasses.dataclass
class IncidentSignals:
    alerts: list[Alert]  # on this incident, then elsewhere; firing first, newest first
    firing: int
    elsewhere: int
    truncated: bool


def incident_signals(*, incident_id: int, limit: int = SIGNALS_SHOWN) -> IncidentSignals:
    """The signals received for an incident: its own alerts, and those about its targets that
    went to another incident in the last day (the routing chose that one: say where)."""
    targets = IncidentTarget.objects.filter(incident_id=incident_id).values("target_id")
    since = timezone.now() - RECENT_ELSEWHERE
    rows = list(
        Alert.objects.filter(
            Q(incident_id=incident_id) | Q(target_id__in=targets, last_seen_at__gte=since)
        )
        .select_related("incident", "target")
        .annotate(
            elsewhere=Case(
                When(incident_id=incident_id, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
            quiet=Case(
                When(status=SignalStatus.FIRING, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            ),
        )
        .order_by("elsewhere", "quiet", "-last_seen_at", "-id")[: limit + 1]
    )
    shown = rows[:limit]
    return IncidentSignals(
        alerts=shown,
        firing=sum(1 for a in shown if not a.elsewhere and a.status == SignalStatus.FIRING),
        elsewhere=sum(1 for a in shown if a.elsewhere),
        truncated=len(rows) > limit,
    )


def incident_alert_list(*, incident_id: int):
    """An incident's alerts (one row per fingerprint): firing first, then the latest seen."""
    return (
        Alert.objects.filter(incident_id=incident_id)
        .select_related("target")
        .annotate(
            quiet=Case(
                When(status=SignalStatus.FIRING, then=Value(0)),
                default=Value(1),
                output_field=IntegerField(),
            )
        )
        .order_by("quiet", "-last_seen_at", "-id")
    )
