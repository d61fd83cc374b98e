"""Detection: signals from monitoring tools (alerts) and from Quell's own monitors, turned into
incidents.

Every signal goes through `signal_ingest`, the one deduplication path: ONE open incident per
target and kind (or, for a signal naming no known target, per fingerprint and kind).

- firing, no such open incident: declare one (detection source alert or monitor), record the
  signal as an `alert` timeline event, link the target (which starts a diagnostic run: the
  evidence at detection);
- firing, open incident exists: an `alert` event on it, unless the same fingerprint was
  recorded firing within QUELL_DETECTION_REPEAT_WINDOW_S; such repeats are counted (Redis) and
  the count is carried by the next event that is written;
- resolved: an `alert` event ("... resolved") on the open incident; a signal never resolves an
  incident, responders do.

Two deliveries at once serialise on a transaction-scoped advisory lock named after the dedup
key, taken before the lookup, so they cannot both miss the open incident and declare two.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from diagnostics.models import IncidentTarget, TargetDatabase
from diagnostics.services import incident_target_add
from incidents.models import OPEN_STATUSES, DetectionSource, EventKind, Incident, TimelineEvent
from incidents.services import incident_declare, timeline_append
from incidents.severity import SEVERITY_RANK, Severity

logger = logging.getLogger(__name__)

FIRING, RESOLVED = "firing", "resolved"
# Namespace of Quell's detection advisory locks (first int4 key of pg_advisory_xact_lock).
_LOCK_NAMESPACE = 0x51454C  # "QEL"
_TITLE_MAX = 200


class Action:
    DECLARED = "declared"  # a new incident
    APPENDED = "appended"  # an event on the open incident
    REPEATED = "repeated"  # a repeat within the window: counted, not written
    RESOLVED = "resolved"  # "resolved" recorded on the open incident
    IGNORED = "ignored"  # resolved with no open incident (or nothing firing): nothing to do


@dataclasses.dataclass
class Signal:
    """One alert or monitor breach, normalised."""

    source: str  # "alertmanager", "webhook", "monitor"
    fingerprint: str
    status: str  # firing | resolved
    title: str
    severity: str
    kind: str
    summary: str = ""
    description: str = ""
    target: TargetDatabase | None = None
    target_hint: str = ""  # what the signal named when no target matched
    detected_by: str = ""
    started_at: datetime.datetime | None = None
    url: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Resolved signals only count when this fingerprint's last record on the incident is firing
    # (monitors send "back within thresholds" on every healthy sweep).
    only_if_firing: bool = False

    @property
    def dedup_key(self) -> str:
        if self.target is not None:
            return f"target:{self.target.pk}:{self.kind}"
        return f"fingerprint:{self.fingerprint}:{self.kind}"


@dataclasses.dataclass
class Outcome:
    action: str
    fingerprint: str
    incident_id: int | None = None
    target: str | None = None
    repeats: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _advisory_lock(key: str) -> None:
    """Serialise every delivery with the same dedup key until this transaction ends."""
    digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, %s)",
            [_LOCK_NAMESPACE, int.from_bytes(digest, "big", signed=True)],
        )


def open_incident_for(signal: Signal) -> Incident | None:
    """The open incident this signal belongs to (oldest first), or None."""
    qs = Incident.objects.filter(status__in=OPEN_STATUSES, kind=signal.kind)
    if signal.target is not None:
        ids = IncidentTarget.objects.filter(target=signal.target).values("incident_id")
        qs = qs.filter(pk__in=ids)
    else:
        ids = TimelineEvent.objects.filter(
            kind=EventKind.ALERT, data__fingerprint=signal.fingerprint
        ).values("incident_id")
        qs = qs.filter(pk__in=ids)
    return qs.order_by("declared_at", "id").first()


def _last_record(incident_id: int, fingerprint: str) -> TimelineEvent | None:
    return (
        TimelineEvent.objects.filter(
            incident_id=incident_id, kind=EventKind.ALERT, data__fingerprint=fingerprint
        )
        .order_by("-occurred_at", "-id")
        .first()
    )


def _repeat_key(incident_id: int, fingerprint: str, status: str) -> str:
    digest = hashlib.sha256(fingerprint.encode()).hexdigest()[:24]
    return f"detection:repeats:{incident_id}:{digest}:{status}"


def _count_repeat(incident_id: int, fingerprint: str, status: str) -> int:
    """Count one suppressed repeat; the count is best effort (a Redis outage loses it)."""
    key = _repeat_key(incident_id, fingerprint, status)
    try:
        cache.add(key, 0, timeout=7 * 86400)
        return int(cache.incr(key))
    except Exception:
        logger.warning("Could not count a repeat of %s on incident %s", fingerprint, incident_id)
        return 0


def _take_repeats(incident_id: int, fingerprint: str, status: str) -> int:
    """The repeats counted since the last record (and start counting again)."""
    key = _repeat_key(incident_id, fingerprint, status)
    try:
        count = int(cache.get(key) or 0)
        cache.delete(key)
        return count
    except Exception:
        return 0


def _event_data(signal: Signal, *, repeats: int = 0) -> dict[str, Any]:
    # The signal's own data (labels, annotations, the raw alert) first: the dedup fields below
    # must not be overridden by a sender's payload.
    return {
        **signal.data,
        "source": signal.source,
        "fingerprint": signal.fingerprint,
        "status": signal.status,
        "title": signal.title,
        "severity": signal.severity,
        "kind": signal.kind,
        "summary": signal.summary,
        "target_id": signal.target.pk if signal.target is not None else None,
        "target_name": signal.target.name if signal.target is not None else None,
        "target_hint": signal.target_hint,
        "detected_by": signal.detected_by,
        "started_at": signal.started_at.isoformat() if signal.started_at else None,
        "url": signal.url,
        "repeats": repeats,
    }


def _where(signal: Signal) -> str:
    if signal.target is not None:
        return "" if signal.target.name in signal.title else f" on {signal.target.name}"
    if signal.target_hint:
        return f" on {signal.target_hint} (not a registered target)"
    return ""


def _firing_message(signal: Signal, *, incident: Incident | None, repeats: int) -> str:
    label = "Monitor breach" if signal.source == "monitor" else "Alert firing"
    message = f"{label}: {signal.title}{_where(signal)}"
    if signal.summary and signal.summary != signal.title:
        message += f" - {signal.summary}"
    if repeats:
        message += f" (repeated {repeats} time{'s' if repeats != 1 else ''} since last recorded)"
    if incident is not None and SEVERITY_RANK.get(signal.severity, 9) < SEVERITY_RANK.get(
        incident.severity, 9
    ):
        message += (
            f". Its severity {signal.severity} is above the incident's {incident.severity}:"
            " a commander decides whether to raise it"
        )
    return message


def _resolved_message(signal: Signal) -> str:
    if signal.source == "monitor":
        head = f"Monitor: {signal.title}{_where(signal)} back within thresholds"
    else:
        head = f"Alert {signal.title}{_where(signal)} resolved"
    return head + " (the incident stays open until a responder resolves it)"


def _actor_label(signal: Signal) -> str:
    return signal.source


def signal_ingest(*, signal: Signal, actor=None) -> Outcome:
    """Record one alert or monitor signal on the open incident of its target and kind, or
    declare that incident; repeats within the window are counted, not repeated."""
    if signal.status not in (FIRING, RESOLVED):
        raise ValueError(f"status must be firing or resolved, not {signal.status!r}")
    if signal.severity not in Severity.values:
        raise ValueError(f"severity must be one of {Severity.values}, not {signal.severity!r}")
    signal.title = (signal.title or signal.fingerprint)[:_TITLE_MAX]
    now = timezone.now()
    window = datetime.timedelta(seconds=settings.QUELL_DETECTION_REPEAT_WINDOW_S)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    label = "" if user else _actor_label(signal)
    target_name = signal.target.name if signal.target is not None else None
    with transaction.atomic():
        _advisory_lock(signal.dedup_key)
        incident = open_incident_for(signal)
        last = _last_record(incident.pk, signal.fingerprint) if incident is not None else None
        if signal.status == RESOLVED:
            if incident is None:
                return Outcome(Action.IGNORED, signal.fingerprint, None, target_name)
            last_status = last.data.get("status") if last is not None else None
            if signal.only_if_firing and last_status != FIRING:
                return Outcome(Action.IGNORED, signal.fingerprint, incident.pk, target_name)
            if last_status == RESOLVED and last.occurred_at >= now - window:
                n = _count_repeat(incident.pk, signal.fingerprint, RESOLVED)
                return Outcome(Action.REPEATED, signal.fingerprint, incident.pk, target_name, n)
            repeats = _take_repeats(incident.pk, signal.fingerprint, RESOLVED)
            timeline_append(
                incident_id=incident.pk,
                kind=EventKind.ALERT,
                message=_resolved_message(signal),
                actor=user,
                actor_label=label,
                data=_event_data(signal, repeats=repeats),
            )
            return Outcome(Action.RESOLVED, signal.fingerprint, incident.pk, target_name, repeats)

        if incident is None:
            detected_at = signal.started_at
            if detected_at is not None and detected_at > now:
                detected_at = now  # a sender's clock ahead of ours
            incident = incident_declare(
                title=signal.title,
                severity=signal.severity,
                kind=signal.kind,
                description=signal.description or signal.summary,
                detection_source=(
                    DetectionSource.MONITOR if signal.source == "monitor" else DetectionSource.ALERT
                ),
                detected_by=signal.detected_by[:200],
                detected_at=detected_at,
                actor=user,
                actor_label=label,
            )
            timeline_append(
                incident_id=incident.pk,
                kind=EventKind.ALERT,
                message=_firing_message(signal, incident=None, repeats=0),
                actor=user,
                actor_label=label,
                data=_event_data(signal),
            )
            if signal.target is not None:
                # Evidence at detection: linking an enabled target starts a diagnostic run.
                incident_target_add(incident_id=incident.pk, target_id=signal.target.pk, actor=user)
            logger.info(
                "%s %s declared incident %s (%s)",
                signal.source,
                signal.fingerprint,
                incident.pk,
                signal.dedup_key,
            )
            return Outcome(Action.DECLARED, signal.fingerprint, incident.pk, target_name)

        if (
            last is not None
            and last.data.get("status") == FIRING
            and last.occurred_at >= now - window
        ):
            n = _count_repeat(incident.pk, signal.fingerprint, FIRING)
            return Outcome(Action.REPEATED, signal.fingerprint, incident.pk, target_name, n)
        repeats = _take_repeats(incident.pk, signal.fingerprint, FIRING)
        timeline_append(
            incident_id=incident.pk,
            kind=EventKind.ALERT,
            message=_firing_message(signal, incident=incident, repeats=repeats),
            actor=user,
            actor_label=label,
            data=_event_data(signal, repeats=repeats),
        )
        return Outcome(Action.APPENDED, signal.fingerprint, incident.pk, target_name, repeats)
