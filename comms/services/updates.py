"""Status updates: render a template for an incident, preview, draft, edit, publish.

Publishing never talks to a receiver: it records the update, its timeline event and one
Delivery row per destination in one transaction, and enqueues the sends after commit."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from config.kernel.permissions import RESPONDER, user_has_role
from incidents.mail import mail_subject
from incidents.models import Incident, Status
from incidents.permissions import user_may_publish_incident

from .. import events, rendering, selectors, status_cache
from ..models import (
    Audience,
    ChannelKind,
    Component,
    ComponentState,
    Delivery,
    DeliveryKind,
    MessageTemplate,
    StatusUpdate,
    Subscriber,
    UndeliveredInitialNotification,
    UpdateState,
)
from .common import (
    PUBLIC_STATUSES,
    CommsError,
    UnfilledMarkers,
    _change_component_state,
    _channel_delivery,
    _enqueue_on_commit,
    _get_incident,
    _site_name,
)
from .subscribers import unsubscribe_url

logger = logging.getLogger(__name__)


@dataclass
class Preview:
    audience: str
    status: str
    subject: str
    body: str
    template_id: int | None
    markers: list[str] = field(default_factory=list)
    component_states: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {
            "audience": self.audience,
            "status": self.status,
            "subject": self.subject,
            "body": self.body,
            "template": self.template_id,
            "unfilled_markers": self.markers,
            "component_states": self.component_states,
            "warnings": self.warnings,
        }


def _get_template(template_id) -> MessageTemplate:
    """The template, or CommsError naming the field."""
    template = MessageTemplate.objects.filter(pk=template_id).first()
    if template is None:
        raise CommsError(f"Template {template_id} does not exist.", field="template")
    return template


def update_render(*, incident: Incident, template: MessageTemplate) -> tuple[str, str]:
    """Render a template for an incident: (subject, body)."""
    context = rendering.build_context(incident, selectors.incident_facts(incident))
    try:
        subject = rendering.render_source(template.subject, context)
        body = rendering.render_source(template.body, context)
    except rendering.TemplateError as exc:
        raise CommsError(f"Template '{template.name}' is broken: {exc}", field="template") from None
    return mail_subject(subject, limit=200), body


def component_states_propose(*, incident: Incident, status: str) -> dict[str, str]:
    """States an update about this incident suggests for the components it touches.

    Components mapped (by target name) to a target the incident affects, plus any component
    an earlier update of this incident set. Resolved proposes operational; otherwise the
    severity's usual impact (SEV1 major outage, SEV2 partial outage, lower degraded).
    """
    touched: set[int] = set()
    for upd in StatusUpdate.objects.filter(incident=incident, state=UpdateState.PUBLISHED).exclude(
        component_states={}
    ):
        touched.update(int(k) for k in upd.component_states)
    target_ids = _incident_target_ids(incident.pk)
    components = list(Component.objects.prefetch_related("targets"))
    for c in components:
        if target_ids & {t.pk for t in c.targets.all()}:
            touched.add(c.pk)
    if status == Status.RESOLVED:
        state = ComponentState.OPERATIONAL
    else:
        state = selectors.SEVERITY_IMPACT.get(incident.severity, ("", ComponentState.DEGRADED))[1]
        if status == Status.MONITORING:
            state = ComponentState.DEGRADED
    return {str(c.pk): str(state) for c in components if c.pk in touched}


def _incident_target_ids(incident_id: int) -> set[int]:
    """Ids of the diagnostics targets linked to the incident."""
    from diagnostics.models import IncidentTarget

    return set(
        IncidentTarget.objects.filter(incident_id=incident_id).values_list("target_id", flat=True)
    )


def _validate_component_states(states) -> dict[str, str]:
    """{"<component id>": "<state>"} checked against existing components and states."""
    if states in (None, ""):
        return {}
    if not isinstance(states, dict):
        raise CommsError(
            'component_states must be an object like {"3": "degraded"}.', field="component_states"
        )
    clean: dict[str, str] = {}
    ids = {str(pk) for pk in Component.objects.values_list("pk", flat=True)}
    for key, value in states.items():
        if str(key) not in ids:
            raise CommsError(f"Component {key} does not exist.", field="component_states")
        if value not in ComponentState.values:
            raise CommsError(
                f"Component state must be one of {', '.join(ComponentState.values)}.",
                field="component_states",
            )
        clean[str(key)] = value
    return clean


def update_preview(
    *,
    incident_id: int,
    template_id: int | None = None,
    audience: str | None = None,
    subject: str | None = None,
    body: str | None = None,
    status: str | None = None,
) -> Preview:
    """What an update would say: the template rendered, or the author's text checked."""
    incident = _get_incident(incident_id)
    template = _get_template(template_id) if template_id else None
    if template is None and audience is None:
        raise CommsError("Choose a template or an audience.", field="template")
    audience = audience or template.audience
    if audience not in Audience.values:
        raise CommsError("Audience must be internal or external.", field="audience")
    if template is not None and template.audience != audience:
        raise CommsError(
            f"Template '{template.name}' is for {template.audience} updates.", field="template"
        )
    if template is not None and (subject is None or body is None):
        rendered_subject, rendered_body = update_render(incident=incident, template=template)
        subject = rendered_subject if subject is None else subject
        body = rendered_body if body is None else body
    status = status or (template.announces_status if template else "") or _public_status(incident)
    if status not in PUBLIC_STATUSES:
        raise CommsError(
            "Status must be investigating, identified, monitoring or resolved.", field="status"
        )
    preview = Preview(
        audience=audience,
        status=status,
        subject=(subject or "").strip(),
        body=(body or "").strip(),
        template_id=template.pk if template else None,
        markers=rendering.unfilled_markers(subject or "", body or ""),
        component_states=component_states_propose(incident=incident, status=status)
        if audience == Audience.EXTERNAL
        else {},
    )
    if preview.markers:
        if audience == Audience.EXTERNAL:
            preview.warnings.append("Fill every [TO FILL: ...] marker before publishing.")
        else:
            preview.warnings.append("Some details are still marked [TO FILL: ...].")
    if audience == Audience.EXTERNAL and not selectors.channels_for(
        audience=audience, severity=incident.severity
    ):
        preview.warnings.append("No external channel is configured: it goes to the status page.")
    return preview


def _public_status(incident: Incident) -> str:
    """The status an update announces by default (closed shows as resolved)."""
    return Status.RESOLVED if incident.status == Status.CLOSED else incident.status


def _clean_text(subject: str, body: str) -> tuple[str, str]:
    """Subject and body stripped and required."""
    # The subject goes out as a mail header: one line whatever was typed or pasted.
    subject, body = mail_subject(subject, limit=10_000), (body or "").strip()
    if not subject:
        raise CommsError("A subject is required.", field="subject")
    if len(subject) > 200:
        raise CommsError("Keep the subject under 200 characters.", field="subject")
    if not body:
        raise CommsError("The message is empty.", field="body")
    return subject, body


@transaction.atomic
def update_create(
    *,
    incident_id: int,
    actor,
    template_id: int | None = None,
    audience: str | None = None,
    subject: str | None = None,
    body: str | None = None,
    status: str | None = None,
    component_states: dict | None = None,
) -> StatusUpdate:
    """Save a draft: the template rendered now, with the author's edits if given."""
    preview = update_preview(
        incident_id=incident_id,
        template_id=template_id,
        audience=audience,
        subject=subject,
        body=body,
        status=status,
    )
    subject_text, body_text = _clean_text(preview.subject, preview.body)
    states = (
        _validate_component_states(component_states)
        if component_states is not None
        else preview.component_states
    )
    if preview.audience == Audience.INTERNAL:
        states = {}
    return StatusUpdate.objects.create(
        incident_id=incident_id,
        template_id=preview.template_id,
        audience=preview.audience,
        status=preview.status,
        subject=subject_text,
        body=body_text,
        component_states=states,
        created_by=actor if getattr(actor, "is_authenticated", False) else None,
    )


def _lock_update(update_id: int) -> StatusUpdate:
    """The update row, locked for this transaction."""
    update = (
        StatusUpdate.objects.select_for_update(of=("self",))
        .select_related("incident")
        .filter(pk=update_id)
        .first()
    )
    if update is None:
        raise CommsError(f"Update {update_id} does not exist.", field="update")
    return update


@transaction.atomic
def update_edit(
    *,
    update_id: int,
    actor,
    subject: str | None = None,
    body: str | None = None,
    status: str | None = None,
    component_states: dict | None = None,
) -> StatusUpdate:
    """Change a draft; a published update is what was sent and cannot change."""
    update = _lock_update(update_id)
    if update.is_published:
        raise CommsError(
            "This update was published and is kept as sent; write a new update instead.",
            field="update",
        )
    update.subject, update.body = _clean_text(
        update.subject if subject is None else subject, update.body if body is None else body
    )
    if status is not None:
        if status not in PUBLIC_STATUSES:
            raise CommsError(
                "Status must be investigating, identified, monitoring or resolved.", field="status"
            )
        update.status = status
    if component_states is not None and update.audience == Audience.EXTERNAL:
        update.component_states = _validate_component_states(component_states)
    update.save()
    return update


def can_publish(user, incident: Incident, audience: str) -> bool:
    """Internal updates: any responder. External: a commander, or this incident's Incident
    Commander or Communications Lead (the playbook gives the public voice to those roles)."""
    if audience == Audience.INTERNAL:
        return user_has_role(user, RESPONDER)
    return user_may_publish_incident(user, incident)


@transaction.atomic
def update_publish(*, update_id: int, actor=None, actor_label: str = "") -> StatusUpdate:
    """Publish a draft: stored as sent, component states applied, on the timeline, and one
    delivery per destination enqueued after commit."""
    update = _lock_update(update_id)
    if update.is_published:
        raise CommsError("This update is already published.", field="update")
    incident = update.incident
    if update.audience == Audience.EXTERNAL:
        markers = rendering.unfilled_markers(update.subject, update.body)
        if markers:
            raise UnfilledMarkers(
                "External updates cannot go out with blanks. Fill in: " + ", ".join(markers),
                field="body",
            )
    user = actor if getattr(actor, "is_authenticated", False) else None
    now = timezone.now()
    update.state = UpdateState.PUBLISHED
    update.published_at = now
    update.published_by = user
    update.published_by_label = "" if user else (actor_label or "quell")
    update.save()
    changed = _apply_component_states(update.component_states, now=now, update=update)
    deliveries = _deliveries_for_update(update, incident)
    events.update_published_event(
        update,
        destinations=[d.destination for d in deliveries],
        component_states=changed,
        actor=user,
        actor_label=actor_label,
    )
    _enqueue_on_commit([d.pk for d in deliveries])
    if update.audience == Audience.EXTERNAL or changed:
        transaction.on_commit(status_cache.invalidate)
    return update


def update_create_and_publish(*, incident_id: int, actor=None, actor_label: str = "", **fields):
    """Draft and publish in one step (the API's publish=true, the automatic notification)."""
    with transaction.atomic():
        draft = update_create(incident_id=incident_id, actor=actor, **fields)
        return update_publish(update_id=draft.pk, actor=actor, actor_label=actor_label)


def update_edit_and_publish(*, update_id: int, actor=None, **changes) -> StatusUpdate:
    """Apply the author's last edits to a draft and publish it, in one transaction."""
    with transaction.atomic():
        update_edit(update_id=update_id, actor=actor, **changes)
        return update_publish(update_id=update_id, actor=actor)


@transaction.atomic
def update_discard(*, update_id: int, actor) -> None:
    """Delete a draft nobody published."""
    update = _lock_update(update_id)
    if update.is_published:
        raise CommsError("A published update is kept as sent.", field="update")
    update.delete()


def _apply_component_states(states: dict, *, now, update: StatusUpdate) -> dict[str, str]:
    """Set the confirmed component states; returns {name: state} of what changed."""
    changed = {}
    if not states:
        return changed
    for comp in Component.objects.select_for_update().filter(pk__in=[int(k) for k in states]):
        new = states[str(comp.pk)]
        if _change_component_state(comp, new, at=now, status_update=update):
            changed[comp.name] = new
    return changed


def _email_for_channel(update: StatusUpdate, incident: Incident) -> tuple[str, str]:
    """Subject and body as channels receive them."""
    prefix = f"[{incident.severity}] " if update.audience == Audience.INTERNAL else ""
    return prefix + update.subject, update.body


def _webhook_payload(update: StatusUpdate, incident: Incident) -> dict:
    """The signed webhook's JSON (internal details only for internal updates)."""
    base = settings.QUELL_BASE_URL.rstrip("/")
    payload = {
        "event": "status_update.published",
        "update": {
            "id": update.pk,
            "audience": update.audience,
            "status": update.status,
            "subject": update.subject,
            "body": update.body,
            "published_at": update.published_at.isoformat(),
        },
        "incident": {"id": incident.pk, "status": incident.status, "severity": incident.severity},
    }
    if update.audience == Audience.INTERNAL:
        payload["incident"].update(
            title=incident.title,
            channel=incident.channel_name,
            bridge=incident.bridge_url,
            url=f"{base}/incidents/{incident.pk}/",
        )
    else:
        payload["status_page"] = f"{base}/status/"
    return payload


def _deliveries_for_update(update: StatusUpdate, incident: Incident) -> list[Delivery]:
    """One delivery per routed channel (and per confirmed subscriber for external updates)."""
    rows: list[Delivery] = []
    subject, body = _email_for_channel(update, incident)
    payload = _webhook_payload(update, incident)
    for channel in selectors.channels_for(audience=update.audience, severity=incident.severity):
        row = _channel_delivery(
            channel,
            kind=DeliveryKind.UPDATE,
            incident=incident,
            status_update=update,
            subject=subject,
            body=body,
            extra={"payload": payload} if channel.kind == ChannelKind.WEBHOOK else {},
        )
        if row is not None:
            rows.append(row)
    if update.audience == Audience.EXTERNAL:
        for sub in Subscriber.objects.filter(
            confirmed_at__isnull=False, unsubscribed_at__isnull=True
        ):
            rows.append(_subscriber_delivery(sub, update, incident))
    return Delivery.objects.bulk_create(rows)


def _subscriber_delivery(sub: Subscriber, update: StatusUpdate, incident) -> Delivery:
    """An e-mail to one subscriber, with its one-click unsubscribe link."""
    link = unsubscribe_url(sub)
    base = settings.QUELL_BASE_URL.rstrip("/")
    body = (
        f"{update.subject}: {update.get_status_display()}\n\n{update.body}\n\n"
        f"Time: {rendering.fmt_time(update.published_at)}\n"
        f"Status page: {base}/status/\n\n"
        f"You receive this because you subscribed to {_site_name()} status updates.\n"
        f"Unsubscribe: {link}\n"
    )
    return Delivery(
        kind=DeliveryKind.UPDATE,
        transport=ChannelKind.EMAIL,
        incident=incident,
        status_update=update,
        subscriber=sub,
        recipients=[sub.email],
        destination=f"subscriber #{sub.pk}",
        subject=f"[{_site_name()} status] {update.get_status_display()}: {update.subject}",
        body=body,
        # RFC 8058 one-click unsubscribe for mail clients.
        extra={
            "headers": {
                "List-Unsubscribe": f"<{link}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        },
        max_attempts=settings.QUELL_COMMS_MAX_ATTEMPTS,
    )


def initial_notification_send(*, incident_id: int) -> StatusUpdate | None:
    """Publish the internal initial notification for a newly declared incident, when on and
    when some channel would receive it. Returns the update (None when nothing was sent)."""
    if not settings.QUELL_COMMS_NOTIFY_ON_DECLARE:
        return None
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return None
    if not selectors.channels_for(audience=Audience.INTERNAL, severity=incident.severity):
        _record_initial_notification_undelivered(incident)
        return None
    template = MessageTemplate.objects.filter(key="internal-initial", active=True).first()
    if template is None:
        return None
    with transaction.atomic():
        # Twice-delivered signal (or a retried task): one initial notification per incident.
        Incident.objects.select_for_update().get(pk=incident_id)
        if StatusUpdate.objects.filter(
            incident_id=incident_id, template=template, state=UpdateState.PUBLISHED
        ).exists():
            return None
        return update_create_and_publish(
            incident_id=incident_id, template_id=template.pk, actor=None, actor_label="quell"
        )


def _record_initial_notification_undelivered(incident: Incident) -> None:
    """Put on the timeline (once) that the initial notification went to nobody, and why."""
    gap = selectors.internal_channel_gap(incident) or ""
    with transaction.atomic():
        _, created = UndeliveredInitialNotification.objects.get_or_create(
            incident=incident, defaults={"reason": gap[:500]}
        )
        if created:
            events.initial_notification_undelivered_event(incident)
