"""Detection: signals from monitoring tools (alerts) and from Quell's own monitors, turned into
incidents.

Signals arrive in deliveries: one Alertmanager notification (all its alerts), one monitor run's
judgement of one target, one generic alert. `signals_ingest` sends a whole delivery to ONE
incident, the first of:

1. an open incident one of its alerts (fingerprint) is already on: an alert's story stays on
   one incident;
2. the open incident of its Alertmanager group (the notification's `groupKey`, else its group
   labels): one notification is one incident;
3. the open incidents of its targets, and, for availability signals, the incident an outage of
   the same server (host and port) opened: the most severe, then the newest (the events say
   so when there was a choice). One server going down is one incident listing every database
   on it;
4. for a signal naming no known target: the open incident of its fingerprint and kind;
5. none: its worst firing signal declares one (detection source alert or monitor), which links
   its targets and so starts their diagnostic runs: the evidence at detection.

A resolved signal never declares and never resolves an incident: it is recorded, responders
resolve. A repeat within QUELL_DETECTION_REPEAT_WINDOW_S is counted on its `Alert` row, not
written; the count rides on the next event that is.

Two deliveries at once: every key a delivery may declare under is an `AlertGroup` row, unique
among open groups. The open ones are locked (FOR UPDATE, in key order) before routing; a new
one is inserted with the incident it declares, so a concurrent delivery waits on the unique
index, fails, and routes again into the incident the first one committed.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from diagnostics.models import IncidentTarget, TargetDatabase
from diagnostics.services import incident_target_add
from incidents.models import OPEN_STATUSES, DetectionSource, Incident, Kind
from incidents.services import incident_declare
from incidents.severity import SEVERITY_RANK, Severity

from . import events
from .models import Alert, AlertGroup, SignalStatus

logger = logging.getLogger(__name__)

FIRING, RESOLVED = SignalStatus.FIRING.value, SignalStatus.RESOLVED.value
_TITLE_MAX = 200
_ONE_OPEN_PER_KEY = "alertgroup_one_open_per_key"
# A delivery that lost the race for a key routes again; more than this means something else.
_ATTEMPTS = 3


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
    name: str = ""  # the alert's name, or the monitor's rule
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Resolved signals only count when this fingerprint's last record on the incident is firing
    # (monitors send "back within thresholds" on every healthy sweep).
    only_if_firing: bool = False

    @property
    def server(self) -> str:
        """The server an outage groups by, host:port ("" when not an availability signal on a
        target with a host). Databases on one server go down together; two servers on one
        machine (two ports) may not, so the port is part of it."""
        if self.target is None or self.kind != Kind.AVAILABILITY:
            return ""
        host = (self.target.host or "").strip().lower()
        return f"{host}:{self.target.port}" if host else ""


@dataclasses.dataclass
class Delivery:
    """Signals that arrived together and go to one incident."""

    signals: list[Signal]
    # Alertmanager's group: its groupKey (or receiver and group labels), and how to show it.
    group: str = ""
    group_label: str = ""


@dataclasses.dataclass
class Outcome:
    action: str
    fingerprint: str
    incident_id: int | None = None
    target: str | None = None
    repeats: int = 0

    def as_dict(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies, and an answer lists up to 1,000 of these.
        return {
            "action": self.action,
            "fingerprint": self.fingerprint,
            "incident_id": self.incident_id,
            "target": self.target,
            "repeats": self.repeats,
        }


@dataclasses.dataclass
class _Key:
    key: str
    label: str
    kind: str
    target: TargetDatabase | None = None


def alertmanager_group(*, group_key: str, receiver: str, group_labels: dict) -> tuple[str, str]:
    """(the routing group of an Alertmanager notification, its label); ("", "") for none."""
    if group_key:
        text = group_key
    elif group_labels:
        text = receiver + json.dumps(sorted(group_labels.items()), separators=(",", ":"))
    else:
        return "", ""
    shown = ", ".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) or group_key
    return text, f"Alertmanager group {{{shown}}}"[:300]


def _keys(delivery: Delivery) -> list[_Key]:
    """Every key this delivery may declare under, in lock order."""
    keys: dict[str, _Key] = {}
    worst = _worst(delivery.signals)
    if delivery.group:
        digest = hashlib.sha256(delivery.group.encode()).hexdigest()[:40]
        keys[f"alertmanager:{digest}"] = _Key(
            f"alertmanager:{digest}", delivery.group_label, worst.kind if worst else Kind.OTHER
        )
    for signal in delivery.signals:
        if signal.target is not None:
            key = f"target:{signal.target.pk}"
            keys.setdefault(key, _Key(key, signal.target.name, signal.kind, signal.target))
            if signal.server:
                key = f"host:{signal.server}"
                keys.setdefault(key, _Key(key, f"server {signal.server}", signal.kind))
        elif not delivery.group:
            key = f"fingerprint:{signal.fingerprint}:{signal.kind}"[:255]
            keys.setdefault(key, _Key(key, signal.title[:300], signal.kind))
    return [keys[k] for k in sorted(keys)]


def _rank(signal_or_incident) -> int:
    return SEVERITY_RANK.get(signal_or_incident.severity, 9)


def _worst(signals: list[Signal]) -> Signal | None:
    firing = [s for s in signals if s.status == FIRING]
    return min(firing, key=_rank) if firing else None


def _most_severe(incidents: list) -> _Open | None:
    """The most severe, then the newest."""
    if not incidents:
        return None
    return min(incidents, key=lambda i: (_rank(i), -i.declared_at.timestamp(), -i.pk))


@dataclasses.dataclass(frozen=True)
class _Open:
    """An open incident as routing sees it: which one, how severe, how new."""

    pk: int
    severity: str
    declared_at: datetime.datetime


@dataclasses.dataclass
class _Group:
    """An open group, locked: its key and the incident it routes to."""

    pk: int
    key: str
    incident: _Open


# The two reads every delivery makes, as SQL: they run on each alert Alertmanager sends, and
# building them through the ORM cost more than running them (bench/alerts.py).
_LOCK_GROUPS_SQL = f"""
    SELECT g.id, g.key, g.incident_id, i.status, i.severity, i.declared_at
    FROM {AlertGroup._meta.db_table} g JOIN {Incident._meta.db_table} i ON i.id = g.incident_id
    WHERE g.key = ANY(%s) AND g.is_open
    ORDER BY g.key
    FOR UPDATE OF g
"""
_LOCK_KNOWN_ALERTS_SQL = f"""
    SELECT a.*, i.severity AS incident_severity, i.declared_at AS incident_declared_at
    FROM {Alert._meta.db_table} a JOIN {Incident._meta.db_table} i ON i.id = a.incident_id
    WHERE a.fingerprint = ANY(%s) AND i.status = ANY(%s)
    FOR UPDATE OF a
"""


def _locked_groups(keys: list[_Key]) -> dict[str, _Group]:
    """The open groups of these keys, locked, with a group whose incident is no longer open
    closed on the way (the incident's resolve normally closes them)."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_GROUPS_SQL, [[k.key for k in keys]])
        rows = cursor.fetchall()
    open_groups = {}
    stale = []
    for pk, key, incident_id, status, severity, declared_at in rows:
        if status in OPEN_STATUSES:
            open_groups[key] = _Group(pk, key, _Open(incident_id, severity, declared_at))
        else:
            stale.append(pk)
    if stale:
        AlertGroup.objects.filter(pk__in=stale).update(is_open=False, closed_at=timezone.now())
    return open_groups


@dataclasses.dataclass
class _Route:
    incident: _Open | None
    note: str = ""
    # The delivery's alerts already on that incident, locked; its targets linked to it.
    alerts: dict[str, Alert] = dataclasses.field(default_factory=dict)
    linked: set[int] = dataclasses.field(default_factory=set)


def _route(delivery: Delivery, keys: list[_Key], groups: dict[str, _Group]) -> _Route:
    """The open incident this delivery goes to (or None), and why when there was a choice."""
    # Every open incident one of these alerts is on, with the alert rows locked: the rows are
    # about to change if the delivery goes there, and it goes there if there is one.
    known = list(
        Alert.objects.raw(
            _LOCK_KNOWN_ALERTS_SQL,
            [[s.fingerprint for s in delivery.signals], [str(s) for s in OPEN_STATUSES]],
        )
    )
    targets = {s.target.pk: s.target for s in delivery.signals if s.target is not None}

    def open_links() -> list[tuple[int, int, _Open]]:
        if not targets:
            return []
        rows = IncidentTarget.objects.filter(
            target_id__in=list(targets), incident__status__in=OPEN_STATUSES
        ).values_list("target_id", "incident_id", "incident__severity", "incident__declared_at")
        return [
            (target_id, _Open(pk, sev, at).pk, _Open(pk, sev, at))
            for target_id, pk, sev, at in rows
        ]

    def route(incident: _Open | None, note: str = "", links=None) -> _Route:
        if incident is None:
            return _Route(None)
        alerts = {a.fingerprint: a for a in known if a.incident_id == incident.pk}
        if links is None:
            # An alert already on the incident linked its target when it arrived: ask only
            # about targets new to it.
            seen = {a.target_id for a in alerts.values()}
            links = open_links() if set(targets) - seen else []
            linked = seen | {target_id for target_id, pk, _ in links if pk == incident.pk}
        else:
            linked = {target_id for target_id, pk, _ in links if pk == incident.pk}
        return _Route(incident, note, alerts=alerts, linked=linked)

    if known:
        return route(
            _most_severe(
                [_Open(a.incident_id, a.incident_severity, a.incident_declared_at) for a in known]
            )
        )
    for key in keys:
        if key.key.startswith("alertmanager:") and key.key in groups:
            return route(groups[key.key].incident)
    links = open_links()
    candidates = {open_.pk: open_ for _, _, open_ in links}
    for key, group in groups.items():
        if key.startswith("host:"):  # an outage incident on the same server
            candidates.setdefault(group.incident.pk, group.incident)
    chosen = _most_severe(list(candidates.values()))
    if chosen is not None and len(candidates) > 1:
        others = sorted((i for i in candidates.values() if i.pk != chosen.pk), key=lambda i: i.pk)
        where = ", ".join(t.name for t in targets.values()) or "the same server"
        note = (
            f"routed to the most severe of {len(candidates)} open incidents on {where}"
            f" ({chosen.severity}; also open: "
            + ", ".join(f"#{i.pk} {i.severity}" for i in others)
            + ")"
        )
        return route(chosen, note, links)
    if chosen is not None:
        return route(chosen, links=links)
    for key in keys:
        if key.key.startswith("fingerprint:") and key.key in groups:
            return route(groups[key.key].incident)
    return _Route(None)


def _bind(keys: list[_Key], groups: dict[str, _Group], incident_id: int) -> int | None:
    """Every key of the delivery now routes to this incident; the id of the delivery's first
    group is returned. A key another delivery bound meanwhile raises IntegrityError (the unique
    index), and the delivery routes again."""
    created = AlertGroup.objects.bulk_create(
        AlertGroup(key=k.key, label=k.label, kind=k.kind, target=k.target, incident_id=incident_id)
        for k in keys
        if k.key not in groups
    )
    moved = [g.pk for g in groups.values() if g.incident.pk != incident_id]
    if moved:
        AlertGroup.objects.filter(pk__in=moved).update(incident_id=incident_id)
    ids = {**{k: g.pk for k, g in groups.items()}, **{g.key: g.pk for g in created}}
    return next((ids[k.key] for k in keys if k.key in ids), None)


def _declare(signal: Signal, *, user, label: str, now) -> Incident:
    detected_at = signal.started_at
    if detected_at is not None and detected_at > now:
        detected_at = now  # a sender's clock ahead of ours
    return incident_declare(
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


def _validate(signal: Signal) -> None:
    if signal.status not in (FIRING, RESOLVED):
        raise ValueError(f"status must be firing or resolved, not {signal.status!r}")
    if signal.severity not in Severity.values:
        raise ValueError(f"severity must be one of {Severity.values}, not {signal.severity!r}")
    signal.title = (signal.title or signal.fingerprint)[:_TITLE_MAX]


def signal_ingest(*, signal: Signal, actor=None) -> Outcome:
    """One signal delivered alone."""
    return signals_ingest(delivery=Delivery([signal]), actor=actor)[0]


def signals_ingest(*, delivery: Delivery, actor=None) -> list[Outcome]:
    """Route a delivery to its incident (declaring one if it fires and has none) and record
    each signal on it; one Outcome per signal, in order."""
    if not delivery.signals:
        return []
    for signal in delivery.signals:
        _validate(signal)
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            with transaction.atomic():
                return _ingest(delivery, user=user)
        except IntegrityError as exc:
            # Another delivery bound one of our keys first: route again into its incident.
            if _ONE_OPEN_PER_KEY not in str(exc) or attempt == _ATTEMPTS:
                raise
            logger.info("Detection: lost the race for a routing key; routing again")
    raise AssertionError("unreachable")


def _ingest(delivery: Delivery, *, user) -> list[Outcome]:
    now = timezone.now()
    window = datetime.timedelta(seconds=settings.QUELL_DETECTION_REPEAT_WINDOW_S)
    signals = delivery.signals
    label = "" if user else signals[0].source
    keys = _keys(delivery)
    groups = _locked_groups(keys)
    route = _route(delivery, keys, groups)
    incident, note, alerts = route.incident, route.note, route.alerts
    worst = _worst(signals)
    declared_by = None
    if incident is None:
        if worst is None:
            return [_outcome(s, Action.IGNORED, None) for s in signals]
        declared = _declare(worst, user=user, label=label, now=now)
        incident = _Open(declared.pk, declared.severity, declared.declared_at)
        declared_by = worst
        logger.info("%s %s declared incident %s", worst.source, worst.fingerprint, incident.pk)
    group_id = None
    if worst is not None:
        group_id = _bind(keys, groups, incident.pk)
    elif keys and keys[0].key in groups:
        group_id = groups[keys[0].key].pk

    outcomes = []
    for signal in signals:
        alert = alerts.get(signal.fingerprint)
        action, repeats = _judge(signal, alert, now=now, window=window)
        if action in (Action.IGNORED, Action.REPEATED):
            if alert is not None and action == Action.REPEATED:
                alert.repeats += 1
                alert.deliveries += 1
                alert.last_seen_at = now
                alert.save(update_fields=["repeats", "deliveries", "last_seen_at"])
            outcomes.append(
                _outcome(signal, action, incident.pk, repeats=alert.repeats if alert else 0)
            )
            continue
        if signal.status == FIRING:
            events.alert_firing_event(
                incident.pk,
                signal=signal,
                repeats=repeats,
                note="" if signal is declared_by else note,
                above=None if signal is declared_by else incident,
                actor=user,
                actor_label=label,
            )
        else:
            events.alert_resolved_event(
                incident.pk, signal=signal, repeats=repeats, actor=user, actor_label=label
            )
        alerts[signal.fingerprint] = _record(
            signal, alert, incident_id=incident.pk, group_id=group_id, now=now
        )
        if signal is declared_by:
            action = Action.DECLARED
        outcomes.append(_outcome(signal, action, incident.pk, repeats=repeats))

    if worst is not None:
        for target in {s.target.pk: s.target for s in signals if s.target is not None}.values():
            if target.pk not in route.linked:
                # Evidence at detection: linking an enabled target starts a diagnostic run.
                incident_target_add(incident_id=incident.pk, target_id=target.pk, actor=user)
    return outcomes


def _judge(signal: Signal, alert: Alert | None, *, now, window) -> tuple[str, int]:
    """(what to do with this signal given the alert's record, the repeats to report)."""
    recorded = alert.recorded_status if alert is not None else None
    recent = alert is not None and alert.recorded_at >= now - window
    pending = alert.repeats if alert is not None else 0
    if signal.status == RESOLVED:
        if signal.only_if_firing and recorded != FIRING:
            return Action.IGNORED, 0
        if recorded == RESOLVED and recent:
            return Action.REPEATED, 0
        return Action.RESOLVED, pending
    if recorded == FIRING and recent:
        return Action.REPEATED, 0
    return Action.APPENDED, pending


def _record(signal: Signal, alert: Alert | None, *, incident_id, group_id, now) -> Alert:
    """The alert's row after a record on the timeline (created on its first)."""
    new = alert is None
    if new:
        alert = Alert(incident_id=incident_id, fingerprint=signal.fingerprint, first_seen_at=now)
        alert.deliveries = 0
    if alert.group_id is None:
        alert.group_id = group_id
    alert.source = signal.source
    alert.name = (signal.name or signal.data.get("alertname") or signal.title)[:200]
    alert.title = signal.title
    alert.severity = signal.severity
    alert.kind = signal.kind
    alert.target = signal.target
    alert.target_hint = signal.target_hint[:300]
    alert.status = signal.status
    alert.url = signal.url[:2000]
    alert.last_seen_at = now
    alert.recorded_status = signal.status
    alert.recorded_at = now
    alert.repeats = 0
    alert.deliveries += 1
    if new:
        alert.save(force_insert=True)
    else:
        alert.save(update_fields=_RECORDED_FIELDS)
    return alert


# What a record changes on an existing alert (its incident, fingerprint and first sight stay).
_RECORDED_FIELDS = (
    "group",
    "source",
    "name",
    "title",
    "severity",
    "kind",
    "target",
    "target_hint",
    "status",
    "url",
    "last_seen_at",
    "recorded_status",
    "recorded_at",
    "repeats",
    "deliveries",
)


def _outcome(signal: Signal, action: str, incident_id, *, repeats: int = 0) -> Outcome:
    target = signal.target.name if signal.target is not None else None
    return Outcome(action, signal.fingerprint, incident_id, target, repeats)


def alert_groups_close(*, incident_id: int) -> int:
    """The incident was resolved or closed: its keys route nowhere now (the next firing signal
    declares a new incident)."""
    return AlertGroup.objects.filter(incident_id=incident_id, is_open=True).update(
        is_open=False, closed_at=timezone.now()
    )


def alert_groups_reopen(*, incident_id: int) -> int:
    """The incident was reopened: its keys route to it again, unless another incident took a
    key meanwhile."""
    reopened = 0
    closed = AlertGroup.objects.filter(incident_id=incident_id, is_open=False).order_by(
        "key", "-closed_at"
    )
    seen = set()
    for group in closed:
        if group.key in seen:
            continue
        seen.add(group.key)
        if AlertGroup.objects.filter(key=group.key, is_open=True).exists():
            continue
        try:
            with transaction.atomic():
                AlertGroup.objects.filter(pk=group.pk).update(is_open=True, closed_at=None)
            reopened += 1
        except IntegrityError:  # taken at this very moment by a new incident
            continue
    return reopened
