"""Detection's timeline events: the signals it records on an incident.

Each builds the message and the data of its event and appends it through incidents' public
`timeline_append`, inside the caller's transaction. The data keys are detection's own: the
labels and annotations, the raw alert as sent, and the fields below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from incidents.models import EventKind, Incident, TimelineEvent
from incidents.services import timeline_append
from incidents.severity import SEVERITY_RANK

if TYPE_CHECKING:
    from .services import Signal


def alert_firing_event(
    incident_id: int,
    *,
    signal: Signal,
    repeats: int,
    note: str = "",
    above: Incident | None = None,
    actor=None,
    actor_label: str = "",
) -> TimelineEvent:
    """A firing alert or monitor breach: what, where, the repeats not written since its last
    record, why it came to this incident (`note`), and whether it is more severe than the
    incident it joined (`above`)."""
    return timeline_append(
        incident_id=incident_id,
        kind=EventKind.ALERT,
        message=_firing_message(signal, incident=above, repeats=repeats, note=note),
        actor=actor,
        actor_label=actor_label,
        data=_event_data(signal, repeats=repeats),
    )


def alert_resolved_event(
    incident_id: int, *, signal: Signal, repeats: int, actor=None, actor_label: str = ""
) -> TimelineEvent:
    """A resolved alert, or a monitor rule back within thresholds (the incident stays open)."""
    return timeline_append(
        incident_id=incident_id,
        kind=EventKind.ALERT,
        message=_resolved_message(signal),
        actor=actor,
        actor_label=actor_label,
        data=_event_data(signal, repeats=repeats),
    )


def _rank(obj) -> int:
    return SEVERITY_RANK.get(obj.severity, 9)


def _event_data(signal, *, repeats: int = 0) -> dict[str, Any]:
    # The signal's own data (labels, annotations, the raw alert) first: the fields below must
    # not be overridden by a sender's payload.
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


def _where(signal) -> str:
    if signal.target is not None:
        return "" if signal.target.name in signal.title else f" on {signal.target.name}"
    if signal.target_hint:
        return f" on {signal.target_hint} (not a registered target)"
    return ""


def _firing_message(signal, *, incident: Incident | None, repeats: int, note: str) -> str:
    label = "Monitor breach" if signal.source == "monitor" else "Alert firing"
    message = f"{label}: {signal.title}{_where(signal)}"
    if signal.summary and signal.summary != signal.title:
        message += f" - {signal.summary}"
    if repeats:
        message += f" (repeated {repeats} time{'s' if repeats != 1 else ''} since last recorded)"
    if note:
        message += f"; {note}"
    if incident is not None and _rank(signal) < _rank(incident):
        message += (
            f". Its severity {signal.severity} is above the incident's {incident.severity}:"
            " a commander decides whether to raise it"
        )
    return message


def _resolved_message(signal) -> str:
    if signal.source == "monitor":
        head = f"Monitor: {signal.title}{_where(signal)} back within thresholds"
    else:
        head = f"Alert {signal.title}{_where(signal)} resolved"
    return head + " (the incident stays open until a responder resolves it)"
