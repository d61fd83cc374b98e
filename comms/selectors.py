"""Reads for comms: what rendering needs, when the next update is due, the status page."""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone

from diagnostics.integrity import events as integrity_events
from diagnostics.remediation import events as remediation_events
from incidents import selectors as incident_selectors
from incidents.models import OPEN_STATUSES, EventKind, Incident, ResponderRole, Status
from incidents.names import display_name
from incidents.selectors import active_assignments_queryset
from incidents.severity import severity_policy

from .models import (
    COMPONENT_STATE_RANK,
    Audience,
    Channel,
    ChannelKind,
    Component,
    ComponentState,
    ComponentStateChange,
    Delivery,
    DeliveryState,
    MessageTemplate,
    StatusUpdate,
    UpdateState,
)
from .rendering import IncidentFacts, fmt_time

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpdateDue:
    """When an incident's next update is due and whether it is late."""

    due_at: datetime.datetime | None
    overdue: bool
    reason: str  # "first external update", "next update", or "" when none is due
    last_update_at: datetime.datetime | None
    every_minutes: int | None

    @property
    def overdue_minutes(self) -> int:
        if not self.overdue or self.due_at is None:
            return 0
        return int((timezone.now() - self.due_at).total_seconds() // 60)

    def as_dict(self) -> dict:
        return {
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "overdue": self.overdue,
            "overdue_minutes": self.overdue_minutes,
            "reason": self.reason,
            "last_update_at": self.last_update_at.isoformat() if self.last_update_at else None,
            "every_minutes": self.every_minutes,
        }


def incident_update_due(
    incident: Incident,
    *,
    now: datetime.datetime | None = None,
    last_any: datetime.datetime | None = None,
    last_external: datetime.datetime | None = None,
    prefetched: bool = False,
) -> UpdateDue:
    """When the incident's next update is due (cadence by severity) and whether it is overdue.

    SEV1/SEV2 owe a first *external* update within `first_minutes` of being declared; after
    that (and for severities without a first deadline) an update of either audience is due
    `every_minutes` after the last one, or after the declaration when there is none yet.
    Resolved and closed incidents owe nothing. Pass `last_any`/`last_external` with
    `prefetched=True` to avoid the query when the caller already knows them.
    """
    now = now or timezone.now()
    cadence = severity_policy(incident.severity).update_cadence
    every, first = cadence.every_minutes, cadence.first_minutes
    if not prefetched:
        agg = StatusUpdate.objects.filter(
            incident_id=incident.pk, state=UpdateState.PUBLISHED
        ).aggregate(
            last_any=Max("published_at"),
            last_external=Max("published_at", filter=Q(audience=Audience.EXTERNAL)),
        )
        last_any, last_external = agg["last_any"], agg["last_external"]
    if incident.status not in OPEN_STATUSES:
        return UpdateDue(None, False, "", last_any, every)
    if first and last_external is None:
        due = incident.declared_at + datetime.timedelta(minutes=first)
        return UpdateDue(due, now > due, "first external update", last_any, every)
    if not every:
        return UpdateDue(None, False, "", last_any, None)
    due = (last_any or incident.declared_at) + datetime.timedelta(minutes=every)
    return UpdateDue(due, now > due, "next update", last_any, every)


def next_update_time(incident: Incident, *, now: datetime.datetime | None = None):
    """When the update after the one being written now will be due (None: no cadence)."""
    now = now or timezone.now()
    every = severity_policy(incident.severity).update_cadence.every_minutes
    if not every or incident.status not in OPEN_STATUSES:
        return None
    return now + datetime.timedelta(minutes=every)


def _diagnostics_lines(incident_id: int) -> list[str]:
    """Lines from diagnostics.selectors.incident_diagnostics_summary (absent app: none)."""
    try:
        from diagnostics.selectors import incident_diagnostics_summary
    except ImportError:
        return []
    try:
        summary = incident_diagnostics_summary(incident_id=incident_id)
    except Exception:
        # Diagnostics is another app; a failure there must not stop anyone from writing.
        logger.exception("diagnostics summary failed for incident %s", incident_id)
        return []
    return diagnostics_summary_lines(summary)


def diagnostics_summary_lines(summary) -> list[str]:
    """Turn the diagnostics summary into bullet lines for a message."""
    if not summary:
        return []
    if isinstance(summary, dict) and isinstance(summary.get("targets"), list):
        return _target_lines(summary["targets"])
    if isinstance(summary, dict):
        for key in ("lines", "summary_lines"):
            if isinstance(summary.get(key), list):
                return [str(x) for x in summary[key] if x]
        lines = []
        for key, value in summary.items():
            if value in (None, "", [], {}):
                continue
            label = str(key).replace("_", " ").capitalize()
            if isinstance(value, dict):
                inner = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in value.items())
                lines.append(f"{label}: {inner}")
            elif isinstance(value, list):
                lines.append(f"{label}: " + "; ".join(str(v) for v in value))
            else:
                lines.append(f"{label}: {value}")
        return lines
    if isinstance(summary, list | tuple):
        return [str(x) for x in summary]
    return [str(summary)]


# Diagnostics older than this are offered to be run again before writing an update.
DIAGNOSTICS_STALE_AFTER = datetime.timedelta(minutes=5)
STATUS_WORDS = {"critical": "Critical", "error": "Failed", "warning": "Warning"}


def _target_lines(targets: list[dict]) -> list[str]:
    """Sentences a reader understands, per affected database, from its latest run: when it ran,
    then each check that found something (title and summary, worst first, units as the checks
    format them), or that every check passed. No raw metric keys."""
    lines = []
    for t in targets:
        name = t.get("name") or f"target {t.get('target_id')}"
        if not t.get("run_id"):
            lines.append(f"{name}: no diagnostics run yet.")
            continue
        if t.get("run_status") in ("queued", "running"):
            lines.append(f"{name}: diagnostics are {t['run_status']}.")
            continue
        finished = t.get("finished_at")
        when = f" at {fmt_time(finished)}" if isinstance(finished, datetime.datetime) else ""
        findings = t.get("findings") or []
        if t.get("connection_status") == "unreachable":
            lines.append(f"{name} could not be reached{when}: {t.get('error') or 'no answer'}.")
            continue
        if not findings:
            total = sum((t.get("counts") or {}).values())
            lines.append(f"{name}: all {total} checks passed{when}.")
            continue
        lines.append(f"{name}, diagnostics{when}:")
        for finding in findings[:5]:
            word = STATUS_WORDS.get(str(finding.get("status", "")), "Note")
            summary = str(finding.get("summary", "")).strip().rstrip(".")
            lines.append(f"  {word}: {finding.get('title', '')}: {summary}.")
        if len(findings) > 5:
            lines.append(f"  and {len(findings) - 5} more (see the incident page).")
    return lines


def diagnostics_freshness(
    incident_id: int, *, now: datetime.datetime | None = None
) -> dict[str, object]:
    """How old the incident's latest diagnostics are, for the composer's "run again" offer:
    {"finished_at", "age" (timedelta or None), "stale" (bool), "has_targets"}."""
    try:
        from diagnostics.selectors import incident_diagnostics_summary

        summary = incident_diagnostics_summary(incident_id=incident_id)
    except Exception:
        logger.exception("diagnostics summary failed for incident %s", incident_id)
        return {"finished_at": None, "age": None, "stale": False, "has_targets": False}
    finished = [
        t["finished_at"]
        for t in summary.get("targets", [])
        if isinstance(t.get("finished_at"), datetime.datetime)
    ]
    latest = max(finished, default=None)
    age = (now or timezone.now()) - latest if latest else None
    has_targets = bool(summary.get("targets"))
    return {
        "finished_at": latest,
        "age": age,
        "stale": has_targets and (age is None or age > DIAGNOSTICS_STALE_AFTER),
        "has_targets": has_targets,
    }


def _root_cause_from_postmortem(incident_id: int) -> tuple[str, str, str]:
    """(root cause, review time, data impact) from the incident's postmortem, if any."""
    try:
        from postmortems import selectors as pm_selectors
    except ImportError:
        return "", "", ""
    try:
        postmortem = pm_selectors.postmortem_for_incident(incident_id=incident_id)
        if postmortem is None:
            return "", "", ""
        review = pm_selectors.current_review(postmortem)
    except Exception:
        # Postmortems is another app; its failure must not stop anyone from writing.
        logger.exception("postmortem facts failed for incident %s", incident_id)
        return "", "", ""
    if review is not None and review.status == "scheduled":
        review_text = fmt_time(review.starts_at)
    elif postmortem.review_due_at is not None:
        review_text = f"[TO FILL: review date (due by {fmt_time(postmortem.review_due_at)})]"
    else:
        review_text = ""
    return (
        (postmortem.root_cause or "").strip(),
        review_text,
        (postmortem.data_impact or "").strip(),
    )


def actions_taken(incident: Incident) -> list:
    """Timeline events of what the responders did, oldest first: status and severity changes,
    remediations and runbook steps that changed something (remediation's events judge their
    own records). Not notes, triage clicks, diagnostic runs or failed remediations."""
    changes = (EventKind.STATUS_CHANGED, EventKind.SEVERITY_CHANGED)
    events = incident.timeline.filter(
        kind__in=[*changes, EventKind.REMEDIATION, EventKind.RUNBOOK_STEP]
    ).select_related("actor")
    return [
        ev
        for ev in events.order_by("occurred_at", "id")
        if ev.kind in changes or remediation_events.changed_something(ev)
    ]


def incident_facts(incident: Incident, *, now: datetime.datetime | None = None) -> IncidentFacts:
    """Everything besides the incident row that templates fill in."""
    events = list(
        incident.timeline.filter(
            kind__in=[EventKind.STATUS_CHANGED, EventKind.INTEGRITY, EventKind.NOTE]
        ).order_by("occurred_at", "id")
    )
    root_cause, resolution = "", ""
    for ev in events:
        data = ev.data or {}
        if data.get("root_cause"):
            root_cause = str(data["root_cause"])
        if (
            ev.kind == EventKind.STATUS_CHANGED
            and data.get("to") in (Status.MONITORING, Status.RESOLVED)
            and data.get("reason")
        ):
            resolution = str(data["reason"])
    # The reason given at "identified" is the cause as the responders stated it.
    root_cause = root_cause or incident_selectors.identified_reason(incident_id=incident.pk)
    actions = [
        f"{timezone.localtime(ev.occurred_at):%H:%M} {ev.message} ({ev.actor_display})"
        for ev in actions_taken(incident)
    ]
    integrity, integrity_ok = integrity_events.timeline_status(
        [ev for ev in events if ev.kind == EventKind.INTEGRITY]
    )
    pm_root, review, data_impact = _root_cause_from_postmortem(incident.pk)
    next_at = next_update_time(incident, now=now) if incident.status in OPEN_STATUSES else None
    roles = [
        f"{a.role_label}: {display_name(a.user)}"
        for a in active_assignments_queryset().filter(incident=incident)
    ]
    return IncidentFacts(
        actions=actions[-15:],
        root_cause=pm_root or root_cause,
        resolution=resolution,
        integrity=integrity,
        integrity_ok=integrity_ok,
        diagnostics=_diagnostics_lines(incident.pk),
        roles=roles,
        review_scheduled=review,
        data_impact=data_impact,
        next_update_at=next_at,
        has_cadence=bool(severity_policy(incident.severity).update_cadence.every_minutes),
    )


def template_list(*, audience: str | None = None, active_only: bool = True):
    """Message templates in display order."""
    # Internal first: most messages during an incident are internal.
    qs = MessageTemplate.objects.order_by("-audience", "position", "name")
    if active_only:
        qs = qs.filter(active=True)
    if audience:
        qs = qs.filter(audience=audience)
    return qs


def suggested_template(incident: Incident, *, audience: str) -> MessageTemplate | None:
    """The default template that fits the incident's status for an audience."""
    if audience == Audience.INTERNAL:
        key = {
            Status.RESOLVED: "internal-resolution",
            Status.CLOSED: "internal-resolution",
        }.get(incident.status)
        if key is None:
            published = StatusUpdate.objects.filter(
                incident=incident, audience=Audience.INTERNAL, state=UpdateState.PUBLISHED
            ).exists()
            key = "internal-update" if published else "internal-initial"
    else:
        status = Status.RESOLVED if incident.status == Status.CLOSED else incident.status
        key = f"external-{status}"
    return MessageTemplate.objects.filter(key=key, active=True).first()


def updates_for_incident(*, incident_id: int, state: str | None = None) -> QuerySet:
    """An incident's updates, newest first."""
    qs = StatusUpdate.objects.filter(incident_id=incident_id).select_related(
        "template", "created_by", "published_by"
    )
    if state:
        qs = qs.filter(state=state)
    # Meta.ordering does not apply to GROUP BY queries: order explicitly (drafts first).
    return qs.order_by("-published_at", "-created_at", "-id").annotate(
        delivered_count=Count("deliveries", filter=Q(deliveries__state=DeliveryState.DELIVERED)),
        failed_count=Count("deliveries", filter=Q(deliveries__state=DeliveryState.FAILED)),
        delivery_count=Count("deliveries"),
    )


def failed_deliveries(*, incident_id: int | None = None) -> QuerySet[Delivery]:
    """Deliveries that finally failed, newest first."""
    qs = Delivery.objects.filter(state=DeliveryState.FAILED).select_related("channel")
    if incident_id is not None:
        qs = qs.filter(incident_id=incident_id)
    return qs


def channels_for(*, audience: str, severity: str) -> list[Channel]:
    """Enabled channels routed for an update of this audience about this severity."""
    return [
        c
        for c in Channel.objects.filter(enabled=True)
        if c.hears(audience=audience, severity=severity)
    ]


def reminder_channels_for(*, severity: str) -> list[Channel]:
    """Enabled internal channels that take reminders for this severity."""
    return [
        c
        for c in Channel.objects.filter(enabled=True, receives_reminders=True)
        if c.hears(audience=Audience.INTERNAL, severity=severity)
    ]


CHANNELS_ADMIN = "Admin → Communications → Channels"
USERS_ADMIN = "Admin → Users"


def channel_email_recipients(channel: Channel, *, severity: str) -> list[str]:
    """The addresses an e-mail channel sends to for this severity (its own list, plus the
    stakeholders when it includes them), normalised and deduplicated."""
    recipients = list(channel.recipients or [])
    if channel.include_stakeholders:
        recipients += list(severity_policy(severity).stakeholders)
    return sorted({r.strip().lower() for r in recipients if r and r.strip()})


def channel_reaches_someone(channel: Channel, *, severity: str) -> bool:
    """False for an e-mail channel with nobody to send to (it is skipped, not delivered)."""
    if channel.kind != ChannelKind.EMAIL:
        return True
    return bool(channel_email_recipients(channel, severity=severity))


def _empty_email_channels(channels: list[Channel], severity: str) -> str:
    empty = [c.name for c in channels if not channel_reaches_someone(c, severity=severity)]
    if not empty:
        return ""
    names = ", ".join(f"“{name}”" for name in empty)
    return f"; e-mail channel {names} has no recipients"


def reminder_gap(incident: Incident) -> str | None:
    """Why a next-update reminder for this incident would reach nobody (None when it reaches
    someone): no reminder channel delivers and the person reminded has no e-mail address.
    The sentence names what to configure."""
    channels = reminder_channels_for(severity=incident.severity)
    if any(channel_reaches_someone(c, severity=incident.severity) for c in channels):
        return None
    owner = comms_owner(incident)
    if owner is not None and owner.email:
        return None
    parts = [
        f"no channel receives reminders for {incident.severity}: add one in {CHANNELS_ADMIN} "
        f"with “receives reminders”" + _empty_email_channels(channels, incident.severity)
    ]
    if owner is None:
        parts.append("no Communications Lead or Incident Commander is assigned to e-mail")
    else:
        parts.append(f"{display_name(owner)} has no e-mail address: set it in {USERS_ADMIN}")
    return "Next-update reminders reach nobody: " + "; ".join(parts) + "."


def internal_channel_gap(incident: Incident) -> str | None:
    """Why the initial notification and internal updates would reach no channel (None when
    one receives them). The sentence names what to configure."""
    channels = channels_for(audience=Audience.INTERNAL, severity=incident.severity)
    if any(channel_reaches_someone(c, severity=incident.severity) for c in channels):
        return None
    return (
        f"Internal updates reach no channel: no channel receives internal {incident.severity} "
        f"updates; add one in {CHANNELS_ADMIN}"
        + _empty_email_channels(channels, incident.severity)
        + "."
    )


def delivery_gaps(incident: Incident) -> list[str]:
    """The notices the comms panel shows for messages of an open incident that reach nobody."""
    if incident.status not in OPEN_STATUSES:
        return []
    return [gap for gap in (reminder_gap(incident), internal_channel_gap(incident)) if gap]


def comms_owner(incident: Incident):
    """Who a reminder goes to: the Communications Lead, else the Incident Commander."""
    holders = {
        a.role: a.user
        for a in active_assignments_queryset().filter(
            incident=incident,
            role__in=[ResponderRole.COMMUNICATIONS_LEAD, ResponderRole.INCIDENT_COMMANDER],
        )
    }
    return holders.get(ResponderRole.COMMUNICATIONS_LEAD) or holders.get(
        ResponderRole.INCIDENT_COMMANDER
    )


def overdue_incidents(*, now: datetime.datetime | None = None) -> list[tuple[Incident, UpdateDue]]:
    """Open incidents whose next update is overdue, with their due information."""
    now = now or timezone.now()
    incidents = Incident.objects.filter(status__in=OPEN_STATUSES).annotate(
        last_any=Max("status_updates__published_at"),
        last_external=Max(
            "status_updates__published_at",
            filter=Q(status_updates__audience=Audience.EXTERNAL),
        ),
    )
    out = []
    for inc in incidents:
        due = incident_update_due(
            inc, now=now, last_any=inc.last_any, last_external=inc.last_external, prefetched=True
        )
        if due.overdue:
            out.append((inc, due))
    return out


# --- Public status page ----------------------------------------------------------------------

OVERALL_LABELS = {
    ComponentState.OPERATIONAL: "All systems operational",
    ComponentState.DEGRADED: "Degraded performance",
    ComponentState.PARTIAL_OUTAGE: "Partial outage",
    ComponentState.MAJOR_OUTAGE: "Major outage",
}
SEVERITY_IMPACT = {
    "SEV1": ("critical", ComponentState.MAJOR_OUTAGE),
    "SEV2": ("major", ComponentState.PARTIAL_OUTAGE),
    "SEV3": ("minor", ComponentState.DEGRADED),
    "SEV4": ("minor", ComponentState.DEGRADED),
}


OUTAGE_STATES = (ComponentState.PARTIAL_OUTAGE, ComponentState.MAJOR_OUTAGE)


def component_uptime(
    *, components: list[Component], since: datetime.datetime, now: datetime.datetime
) -> dict[int, float]:
    """Percent of the time since `since` each component spent without an outage (partial or
    major), from its recorded state changes; operational before the first one."""
    changes: dict[int, list[tuple[datetime.datetime, str]]] = {c.pk: [] for c in components}
    before: dict[int, str] = {}
    rows = ComponentStateChange.objects.filter(
        component__in=components, changed_at__lte=now
    ).order_by("component_id", "changed_at", "id")
    for row in rows.values_list("component_id", "changed_at", "state"):
        component_id, at, state = row
        if at <= since:
            before[component_id] = state  # the state the window starts in
        else:
            changes[component_id].append((at, state))
    total = (now - since).total_seconds()
    out = {}
    for c in components:
        state = before.get(c.pk, ComponentState.OPERATIONAL)
        cursor, down = since, 0.0
        for at, new_state in changes[c.pk]:
            if state in OUTAGE_STATES:
                down += (at - cursor).total_seconds()
            cursor, state = at, new_state
        if state in OUTAGE_STATES:
            down += (now - cursor).total_seconds()
        out[c.pk] = round(100.0 * (1 - down / total), 2) if total > 0 else 100.0
    return out


def status_page_snapshot(*, now: datetime.datetime | None = None) -> dict:
    """Everything the public status page shows, from external published updates only.

    An incident appears once it has an external update; its public title and status are
    those of its latest external update, never the internal incident record.
    """
    now = now or timezone.now()
    days = settings.QUELL_STATUS_PAGE_HISTORY_DAYS
    since = now - datetime.timedelta(days=days)
    public = StatusUpdate.objects.filter(audience=Audience.EXTERNAL, state=UpdateState.PUBLISHED)
    incident_ids = set(public.filter(published_at__gte=since).values_list("incident_id", flat=True))
    # An incident still unresolved on the page stays there however old it is.
    latest_by_incident: dict[int, StatusUpdate] = {}
    for upd in (
        public.exclude(incident_id__in=incident_ids)
        .order_by("incident_id", "-published_at", "-id")
        .distinct("incident_id")
    ):
        if upd.status != Status.RESOLVED:
            incident_ids.add(upd.incident_id)
    updates = list(
        public.filter(incident_id__in=incident_ids)
        .select_related("incident")
        .order_by("-published_at", "-id")
    )
    by_incident: dict[int, list[StatusUpdate]] = {}
    for upd in updates:
        by_incident.setdefault(upd.incident_id, []).append(upd)
        latest_by_incident.setdefault(upd.incident_id, upd)
    last_any = dict(
        StatusUpdate.objects.filter(incident_id__in=incident_ids, state=UpdateState.PUBLISHED)
        .values("incident_id")
        .annotate(m=Max("published_at"))
        .values_list("incident_id", "m")
    )
    current, history = [], []
    for incident_id, ups in by_incident.items():
        latest = ups[0]
        incident = latest.incident
        impact, _ = SEVERITY_IMPACT.get(incident.severity, ("minor", ComponentState.DEGRADED))
        resolved = latest.status == Status.RESOLVED
        item = {
            "id": incident_id,
            "title": latest.subject,
            "status": latest.status,
            "status_label": Status(latest.status).label,
            "impact": impact,
            "started_at": ups[-1].published_at,
            "updated_at": latest.published_at,
            "resolved_at": latest.published_at if resolved else None,
            "updates": [
                {
                    "id": u.pk,
                    "status": u.status,
                    "status_label": Status(u.status).label,
                    "body": u.body,
                    "published_at": u.published_at,
                }
                for u in ups
            ],
            "overdue": None,
        }
        if resolved:
            history.append(item)
        else:
            due = incident_update_due(
                incident,
                now=now,
                last_any=last_any.get(incident_id),
                last_external=latest.published_at,
                prefetched=True,
            )
            if due.overdue:
                item["overdue"] = {"due_at": due.due_at, "last_update_at": latest.published_at}
            current.append((incident.severity, item))
    current.sort(key=lambda pair: (pair[0], -pair[1]["updated_at"].timestamp()))
    current_items = [item for _, item in current]
    history.sort(key=lambda i: i["updated_at"], reverse=True)
    visible = list(Component.objects.filter(visible=True))
    uptime = component_uptime(components=visible, since=since, now=now)
    components = [
        {
            "id": c.pk,
            "name": c.name,
            "description": c.description,
            "state": c.state,
            "state_label": ComponentState(c.state).label,
            "updated_at": c.state_changed_at,
            "uptime_percent": uptime[c.pk],
        }
        for c in visible
    ]
    worst = max(
        (ComponentState(c["state"]) for c in components),
        key=lambda s: COMPONENT_STATE_RANK[s],
        default=ComponentState.OPERATIONAL,
    )
    for severity, _item in current:
        implied = SEVERITY_IMPACT.get(severity, ("minor", ComponentState.DEGRADED))[1]
        # With no component marked, an unresolved incident still means "not all clear".
        if worst == ComponentState.OPERATIONAL:
            worst = implied if not components else ComponentState.DEGRADED
    return {
        "name": settings.QUELL_STATUS_PAGE_NAME,
        "generated_at": now,
        "overall": {"state": str(worst), "label": OVERALL_LABELS[worst]},
        "components": components,
        "current": current_items,
        "history": history,
        "history_days": days,
    }
