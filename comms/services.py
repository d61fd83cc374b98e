"""Every write in comms: templates, drafts and publishing, channels, deliveries and their
attempts, reminders, components and subscribers.

Publishing never talks to a receiver: it records the update, its timeline event and one
Delivery row per destination in one transaction, and enqueues the sends after commit. Sending
happens in Celery (`comms.tasks.delivery_send`), one attempt per task run.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from incidents.models import OPEN_STATUSES, EventKind, Incident, ResponderRole, Status
from incidents.permissions import COMMANDER, RESPONDER, user_has_role
from incidents.services import IncidentError, timeline_append
from incidents.severity import Severity

from . import rendering, selectors, status_cache, transports
from .models import (
    Audience,
    Channel,
    ChannelAudience,
    ChannelKind,
    Component,
    ComponentState,
    Delivery,
    DeliveryKind,
    DeliveryState,
    MessageTemplate,
    ReminderLog,
    StatusUpdate,
    Subscriber,
    UpdateState,
)

logger = logging.getLogger(__name__)

PUBLIC_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED)
CONFIRM_SALT = "comms.subscriber.confirm"
UNSUBSCRIBE_SALT = "comms.subscriber.unsubscribe"
CONFIRM_MAX_AGE = datetime.timedelta(days=7)
CONFIRM_RESEND_AFTER = datetime.timedelta(minutes=10)


class CommsError(IncidentError):
    """A comms request the rules refuse (shown as HTTP 400 with the field at fault)."""


class UnfilledMarkers(CommsError):
    code = "unfilled_markers"


# --- Templates ------------------------------------------------------------------------------


TEMPLATE_FIELDS = ("key", "name", "audience", "announces_status", "subject", "body", "active")


@transaction.atomic
def template_save(*, actor, template_id: int | None = None, **fields) -> MessageTemplate:
    """Create or edit a message template; sent updates keep their own text."""
    unknown = set(fields) - set(TEMPLATE_FIELDS) - {"position"}
    if unknown:
        raise CommsError(f"Unknown fields: {', '.join(sorted(unknown))}.")
    if template_id is None:
        template = MessageTemplate()
    else:
        template = MessageTemplate.objects.select_for_update().filter(pk=template_id).first()
        if template is None:
            raise CommsError(f"Template {template_id} does not exist.", field="template")
    for name, value in fields.items():
        setattr(template, name, value)
    if template.audience not in Audience.values:
        raise CommsError("Audience must be internal or external.", field="audience")
    if template.announces_status and template.announces_status not in PUBLIC_STATUSES:
        raise CommsError(
            "announces_status must be investigating, identified, monitoring or resolved.",
            field="announces_status",
        )
    if not (template.key or "").strip():
        raise CommsError("A key is required.", field="key")
    if not (template.subject or "").strip():
        raise CommsError("A subject is required.", field="subject")
    if not (template.body or "").strip():
        raise CommsError("A body is required.", field="body")
    for name in ("subject", "body"):
        try:
            rendering.validate_template_source(getattr(template, name))
        except rendering.TemplateError as exc:
            raise CommsError(str(exc), field=name) from None
    if MessageTemplate.objects.filter(key=template.key).exclude(pk=template.pk).exists():
        raise CommsError(f"A template with key '{template.key}' exists.", field="key")
    template.updated_by = actor if getattr(actor, "is_authenticated", False) else None
    template.save()
    return template


def templates_install_defaults(*, overwrite: bool = False) -> int:
    """Create the playbook's default templates that are missing (or reset them). Returns count."""
    count = 0
    for d in rendering.DEFAULT_TEMPLATES:
        existing = MessageTemplate.objects.filter(key=d.key).first()
        if existing is not None and not overwrite:
            continue
        obj = existing or MessageTemplate(key=d.key)
        obj.name, obj.audience, obj.announces_status = d.name, d.audience, d.announces_status
        obj.subject, obj.body, obj.position = d.subject, d.body, d.position
        obj.is_default, obj.active = True, True
        obj.save()
        count += 1
    return count


# --- Rendering and drafts -------------------------------------------------------------------


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


def _get_incident(incident_id: int) -> Incident:
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        raise CommsError(f"Incident {incident_id} does not exist.", field="incident")
    return incident


def _get_template(template_id) -> MessageTemplate:
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
    return subject.replace("\n", " ")[:200], body


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
    return Status.RESOLVED if incident.status == Status.CLOSED else incident.status


def _clean_text(subject: str, body: str) -> tuple[str, str]:
    subject, body = (subject or "").strip(), (body or "").strip()
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
    if user_has_role(user, COMMANDER):
        return True
    if not user_has_role(user, RESPONDER):
        return False
    return incident.assignments.filter(
        user=user,
        role__in=[ResponderRole.INCIDENT_COMMANDER, ResponderRole.COMMUNICATIONS_LEAD],
        relieved_at__isnull=True,
    ).exists()


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
    changed = _apply_component_states(update.component_states, now=now)
    deliveries = _deliveries_for_update(update, incident)
    timeline_append(
        incident_id=incident.pk,
        kind=EventKind.COMMS,
        message=f"{update.get_audience_display()} update published: {update.subject}",
        actor=user,
        actor_label="" if user else (actor_label or "quell"),
        data={
            "update_id": update.pk,
            "audience": update.audience,
            "status": update.status,
            "template": update.template.key if update.template_id else None,
            "destinations": [d.destination for d in deliveries],
            "component_states": changed,
        },
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


@transaction.atomic
def update_discard(*, update_id: int, actor) -> None:
    """Delete a draft nobody published."""
    update = _lock_update(update_id)
    if update.is_published:
        raise CommsError("A published update is kept as sent.", field="update")
    update.delete()


def _apply_component_states(states: dict, *, now) -> dict[str, str]:
    changed = {}
    if not states:
        return changed
    for comp in Component.objects.select_for_update().filter(pk__in=[int(k) for k in states]):
        new = states[str(comp.pk)]
        if comp.state != new:
            comp.state = new
            comp.state_changed_at = now
            comp.save(update_fields=["state", "state_changed_at", "updated_at"])
            changed[comp.name] = new
    return changed


def _enqueue_on_commit(delivery_ids: list[int]) -> None:
    if not delivery_ids:
        return

    def enqueue():
        from .tasks import delivery_send

        for pk in delivery_ids:
            try:
                delivery_send.delay(pk)
            except Exception:
                # A broker outage must not lose the delivery: it stays pending in the database
                # and deliveries_resume picks it up.
                logger.exception("could not enqueue delivery %s", pk)

    transaction.on_commit(enqueue)


# --- Routing --------------------------------------------------------------------------------


def _site_name() -> str:
    return settings.QUELL_STATUS_PAGE_NAME


def _email_for_channel(update: StatusUpdate, incident: Incident) -> tuple[str, str]:
    prefix = f"[{incident.severity}] " if update.audience == Audience.INTERNAL else ""
    return prefix + update.subject, update.body


def _webhook_payload(update: StatusUpdate, incident: Incident) -> dict:
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


def _channel_delivery(channel: Channel, **kwargs) -> Delivery | None:
    recipients: list[str] = []
    if channel.kind == ChannelKind.EMAIL:
        recipients = list(channel.recipients or [])
        incident = kwargs.get("incident")
        if channel.include_stakeholders and incident is not None:
            recipients += selectors.stakeholders_for(incident.severity)
        recipients = sorted({r.strip().lower() for r in recipients if r and r.strip()})
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


def _deliveries_for_update(update: StatusUpdate, incident: Incident) -> list[Delivery]:
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


def unsubscribe_url(subscriber: Subscriber) -> str:
    token = signing.dumps({"s": subscriber.pk, "e": subscriber.email}, salt=UNSUBSCRIBE_SALT)
    return settings.QUELL_BASE_URL.rstrip("/") + f"/status/unsubscribe/{token}/"


def _subscriber_delivery(sub: Subscriber, update: StatusUpdate, incident) -> Delivery:
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


# --- Deliveries -----------------------------------------------------------------------------


@dataclass
class AttemptOutcome:
    delivery_id: int
    state: str
    retry_in: float | None = None  # seconds until the next attempt should run


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff after the n-th failed attempt: base * 2^(n-1), capped."""
    base = float(settings.QUELL_COMMS_RETRY_BASE_SECONDS)
    return min(base * (2 ** max(attempt - 1, 0)), float(settings.QUELL_COMMS_RETRY_MAX_SECONDS))


def _claim(delivery_id: int) -> Delivery | None:
    """Lock the row and mark an attempt started; None when there is nothing to do."""
    with transaction.atomic():
        delivery = (
            Delivery.objects.select_for_update(of=("self",))
            .select_related("channel")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.state in (DeliveryState.DELIVERED, DeliveryState.FAILED):
            return None
        now = timezone.now()
        if delivery.state == DeliveryState.SENDING and delivery.claimed_at is not None:
            # Another worker is on it, unless its claim is older than any send can take
            # (that worker died mid-send): then this run takes over.
            stale_after = datetime.timedelta(seconds=float(settings.QUELL_COMMS_HTTP_TIMEOUT) * 4)
            if now - delivery.claimed_at < stale_after + datetime.timedelta(seconds=30):
                return None
        if delivery.next_attempt_at and delivery.next_attempt_at > now + datetime.timedelta(
            seconds=1
        ):
            # Enqueued early (a duplicate message or a manual resume): not yet.
            return None
        delivery.state = DeliveryState.SENDING
        delivery.claimed_at = now
        delivery.attempts += 1
        delivery.last_attempt_at = now
        delivery.save(update_fields=["state", "claimed_at", "attempts", "last_attempt_at"])
        return delivery


def _send(delivery: Delivery) -> transports.SendResult:
    channel = delivery.channel
    if delivery.transport == ChannelKind.EMAIL:
        return transports.send_email(
            recipients=list(delivery.recipients),
            subject=delivery.subject,
            body=delivery.body,
            headers=(delivery.extra or {}).get("headers"),
        )
    if channel is None:
        raise transports.SendError("The channel was deleted.", transient=False)
    if not channel.enabled:
        raise transports.SendError("The channel is disabled.", transient=False)
    if delivery.transport == ChannelKind.SLACK:
        return transports.send_slack(url=channel.url, subject=delivery.subject, body=delivery.body)
    payload = dict((delivery.extra or {}).get("payload") or {})
    payload.setdefault("event", delivery.kind)
    payload["delivery_id"] = delivery.pk
    return transports.send_webhook(
        url=channel.url, secret=channel.signing_secret, payload=payload, delivery_id=delivery.pk
    )


def delivery_attempt(*, delivery_id: int) -> AttemptOutcome:
    """Make one attempt at a delivery and record its outcome.

    Not one transaction on purpose: the row is claimed (locked, attempt counted) and committed
    before the network call, so no lock is held while a receiver is slow, and the result is
    recorded in a second short transaction.
    """
    delivery = _claim(delivery_id)
    if delivery is None:
        current = Delivery.objects.filter(pk=delivery_id).values_list("state", flat=True).first()
        return AttemptOutcome(delivery_id, current or "missing")
    try:
        result = _send(delivery)
        error, transient, code, excerpt = "", False, result.code, result.excerpt
    except transports.SendError as exc:
        error, transient, code, excerpt = str(exc), exc.transient, exc.code, exc.excerpt
    except Exception as exc:  # an unexpected bug in a sender still ends the attempt cleanly
        logger.exception("delivery %s crashed", delivery_id)
        error, transient, code, excerpt = f"Unexpected error: {exc!r}", True, None, ""
    return _record(delivery_id, error=error, transient=transient, code=code, excerpt=excerpt)


@transaction.atomic
def _record(delivery_id: int, *, error: str, transient: bool, code, excerpt: str) -> AttemptOutcome:
    delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
    now = timezone.now()
    delivery.response_code = code
    delivery.response_excerpt = (excerpt or "")[: transports.EXCERPT_CHARS]
    delivery.claimed_at = None
    if not error:
        delivery.state = DeliveryState.DELIVERED
        delivery.delivered_at = now
        delivery.error = ""
        delivery.next_attempt_at = None
        delivery.save()
        return AttemptOutcome(delivery_id, delivery.state)
    delivery.error = error[:2000]
    if transient and delivery.attempts < delivery.max_attempts:
        wait = backoff_seconds(delivery.attempts)
        delivery.state = DeliveryState.RETRYING
        delivery.next_attempt_at = now + datetime.timedelta(seconds=wait)
        delivery.save()
        return AttemptOutcome(delivery_id, delivery.state, retry_in=wait)
    delivery.state = DeliveryState.FAILED
    delivery.next_attempt_at = None
    delivery.save()
    if delivery.incident_id:
        timeline_append(
            incident_id=delivery.incident_id,
            kind=EventKind.COMMS,
            message=(
                f"Delivery to {delivery.destination} failed after {delivery.attempts} "
                f"attempt(s): {delivery.error}"
            ),
            actor_label="quell",
            data={"delivery_id": delivery.pk, "state": "failed", "error": delivery.error},
        )
    return AttemptOutcome(delivery_id, delivery.state)


@transaction.atomic
def delivery_retry(*, delivery_id: int, actor) -> Delivery:
    """Send a failed delivery again (a few more attempts), on request of a person."""
    delivery = Delivery.objects.select_for_update().filter(pk=delivery_id).first()
    if delivery is None:
        raise CommsError(f"Delivery {delivery_id} does not exist.", field="delivery")
    if delivery.state != DeliveryState.FAILED:
        raise CommsError(
            f"Only failed deliveries can be retried; this one is {delivery.state}.",
            field="delivery",
        )
    delivery.state = DeliveryState.PENDING
    delivery.max_attempts = delivery.attempts + settings.QUELL_COMMS_MAX_ATTEMPTS
    delivery.next_attempt_at = None
    delivery.save()
    if delivery.incident_id:
        user = actor if getattr(actor, "is_authenticated", False) else None
        timeline_append(
            incident_id=delivery.incident_id,
            kind=EventKind.COMMS,
            message=f"Retrying the failed delivery to {delivery.destination}",
            actor=user,
            actor_label="" if user else "quell",
            data={"delivery_id": delivery.pk, "state": "retry"},
        )
    _enqueue_on_commit([delivery.pk])
    return delivery


def deliveries_resume(*, now: datetime.datetime | None = None) -> int:
    """Re-enqueue deliveries whose task was lost (broker outage, worker killed). Returns count."""
    now = now or timezone.now()
    grace = datetime.timedelta(seconds=60)
    stale = datetime.timedelta(seconds=float(settings.QUELL_COMMS_HTTP_TIMEOUT) * 4 + 30)
    ids = list(
        Delivery.objects.filter(
            Q(state=DeliveryState.PENDING, created_at__lt=now - grace)
            | Q(state=DeliveryState.RETRYING, next_attempt_at__lt=now - grace)
            | Q(state=DeliveryState.SENDING, claimed_at__lt=now - stale)
        ).values_list("pk", flat=True)[:500]
    )
    from .tasks import delivery_send

    for pk in ids:
        delivery_send.delay(pk)
    return len(ids)


# --- Notification on declare and reminders ---------------------------------------------------


def initial_notification_send(*, incident_id: int) -> StatusUpdate | None:
    """Publish the internal initial notification for a newly declared incident, when on and
    when some channel would receive it. Returns the update (None when nothing was sent)."""
    if not settings.QUELL_COMMS_NOTIFY_ON_DECLARE:
        return None
    incident = Incident.objects.filter(pk=incident_id).first()
    if incident is None:
        return None
    if not selectors.channels_for(audience=Audience.INTERNAL, severity=incident.severity):
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


def _reminder_text(incident: Incident, due: selectors.UpdateDue, owner) -> tuple[str, str]:
    who = f"@{owner.get_username()}" if owner is not None else "Communications Lead"
    base = settings.QUELL_BASE_URL.rstrip("/")
    subject = f"[{incident.severity}] Update due: {incident.title}"
    body = (
        f"{who}: the {due.reason} for incident #{incident.pk} ({incident.title}, "
        f"{incident.severity}, {incident.get_status_display()}) was due at "
        f"{rendering.fmt_time(due.due_at)}.\n"
        f"Post an update: {base}/incidents/{incident.pk}/\n"
        f"Incident channel: {incident.channel_name}"
    )
    return subject, body


def reminders_send_due(*, now: datetime.datetime | None = None) -> int:
    """Remind the Communications Lead (or Commander) of every overdue update, once per due
    time, through the reminder channels and by e-mail. Returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    for incident, due in selectors.overdue_incidents(now=now):
        with transaction.atomic():
            locked = Incident.objects.select_for_update().get(pk=incident.pk)
            if locked.status not in OPEN_STATUSES:
                continue
            owner = selectors.comms_owner(locked)
            try:
                with transaction.atomic():
                    ReminderLog.objects.create(
                        incident=locked, due_at=due.due_at, reminded_user=owner
                    )
            except IntegrityError:
                continue  # already reminded for this due time
            subject, body = _reminder_text(locked, due, owner)
            rows = []
            for channel in selectors.reminder_channels_for(severity=locked.severity):
                row = _channel_delivery(
                    channel,
                    kind=DeliveryKind.REMINDER,
                    incident=locked,
                    subject=subject,
                    body=body,
                    extra={
                        "payload": {
                            "event": "reminder",
                            "incident": {"id": locked.pk, "severity": locked.severity},
                            "due": due.as_dict(),
                            "text": body,
                        }
                    }
                    if channel.kind == ChannelKind.WEBHOOK
                    else {},
                )
                if row is not None:
                    rows.append(row)
            if owner is not None and owner.email:
                rows.append(
                    Delivery(
                        kind=DeliveryKind.REMINDER,
                        transport=ChannelKind.EMAIL,
                        incident=locked,
                        recipients=[owner.email],
                        destination=f"{owner.get_username()} <{owner.email}>",
                        subject=subject,
                        body=body,
                        max_attempts=settings.QUELL_COMMS_MAX_ATTEMPTS,
                    )
                )
            rows = Delivery.objects.bulk_create(rows)
            timeline_append(
                incident_id=locked.pk,
                kind=EventKind.COMMS,
                message=(
                    f"Reminder: {due.reason} was due at {rendering.fmt_time(due.due_at)}; "
                    f"reminded {owner.get_username() if owner else 'the channels'}"
                ),
                actor_label="quell",
                data={
                    "reminder": True,
                    "due_at": due.due_at.isoformat(),
                    "reminded_user_id": owner.pk if owner else None,
                    "destinations": [r.destination for r in rows],
                },
            )
            _enqueue_on_commit([r.pk for r in rows])
            sent += 1
    if sent:
        status_cache.invalidate()  # the page's "update overdue" notice changed
    return sent


# --- Channels and components ----------------------------------------------------------------


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
    if comp.state != state:
        old = comp.state
        comp.state = state
        comp.state_changed_at = timezone.now()
        comp.save(update_fields=["state", "state_changed_at", "updated_at"])
        if incident_id is not None:
            user = actor if getattr(actor, "is_authenticated", False) else None
            timeline_append(
                incident_id=incident_id,
                kind=EventKind.COMMS,
                message=f"Status page: {comp.name} is now {comp.get_state_display()}",
                actor=user,
                actor_label="" if user else "quell",
                data={"component_id": comp.pk, "from": old, "to": state},
            )
        transaction.on_commit(status_cache.invalidate)
    return comp


@transaction.atomic
def component_delete(*, component_id: int, actor) -> None:
    """Remove a component from the status page."""
    Component.objects.filter(pk=component_id).delete()
    transaction.on_commit(status_cache.invalidate)


# --- Subscribers ----------------------------------------------------------------------------


def _confirm_url(sub: Subscriber) -> str:
    token = signing.dumps({"s": sub.pk, "e": sub.email}, salt=CONFIRM_SALT)
    return settings.QUELL_BASE_URL.rstrip("/") + f"/status/subscribe/confirm/{token}/"


@transaction.atomic
def subscriber_subscribe(*, email: str) -> Subscriber:
    """Start a subscription: record the address and send a confirmation link (double opt-in).

    Idempotent and quiet: an address already confirmed is left alone, a pending one gets a new
    link at most every few minutes, so the form cannot be used to flood somebody's inbox.
    """
    email = (email or "").strip()
    try:
        validate_email(email)
    except ValidationError:
        raise CommsError("Enter a valid e-mail address.", field="email") from None
    sub = Subscriber.objects.select_for_update().filter(email__iexact=email).first()
    now = timezone.now()
    if sub is None:
        try:
            with transaction.atomic():
                sub = Subscriber.objects.create(email=email)
        except IntegrityError:
            sub = Subscriber.objects.select_for_update().get(email__iexact=email)
    if sub.is_active:
        return sub
    if sub.confirmation_sent_at and now - sub.confirmation_sent_at < CONFIRM_RESEND_AFTER:
        return sub
    if sub.unsubscribed_at is not None:
        # Coming back: confirm again before anything is sent.
        sub.unsubscribed_at = None
        sub.confirmed_at = None
    sub.confirmation_sent_at = now
    sub.save()
    name = _site_name()
    delivery = Delivery.objects.create(
        kind=DeliveryKind.CONFIRMATION,
        transport=ChannelKind.EMAIL,
        subscriber=sub,
        recipients=[sub.email],
        destination=f"subscriber #{sub.pk}",
        subject=f"Confirm your subscription to {name} status updates",
        body=(
            f"Someone (hopefully you) asked to receive {name} status updates at this address.\n\n"
            f"Confirm within 7 days: {_confirm_url(sub)}\n\n"
            "If it was not you, ignore this message and nothing will be sent."
        ),
        max_attempts=settings.QUELL_COMMS_MAX_ATTEMPTS,
    )
    _enqueue_on_commit([delivery.pk])
    return sub


def _load_token(token: str, *, salt: str, max_age=None) -> Subscriber:
    try:
        data = signing.loads(token, salt=salt, max_age=max_age)
    except signing.SignatureExpired:
        raise CommsError("This link has expired; subscribe again.", field="token") from None
    except signing.BadSignature:
        raise CommsError("This link is not valid.", field="token") from None
    sub = Subscriber.objects.select_for_update().filter(pk=data.get("s")).first()
    if sub is None or sub.email.lower() != str(data.get("e", "")).lower():
        raise CommsError("This subscription no longer exists.", field="token")
    return sub


@transaction.atomic
def subscriber_confirm(*, token: str) -> Subscriber:
    """Confirm a subscription from the link in the confirmation e-mail."""
    sub = _load_token(token, salt=CONFIRM_SALT, max_age=CONFIRM_MAX_AGE)
    if sub.unsubscribed_at is not None:
        raise CommsError("This address unsubscribed; subscribe again.", field="token")
    if sub.confirmed_at is None:
        sub.confirmed_at = timezone.now()
        sub.save(update_fields=["confirmed_at"])
    return sub


@transaction.atomic
def subscriber_unsubscribe_check(*, token: str) -> Subscriber:
    """The subscriber an unsubscribe link names (raises CommsError for a bad link)."""
    return _load_token(token, salt=UNSUBSCRIBE_SALT)


@transaction.atomic
def subscriber_unsubscribe(*, token: str) -> Subscriber:
    """Stop all updates to an address (the link in every update; no login, no questions)."""
    sub = _load_token(token, salt=UNSUBSCRIBE_SALT)
    if sub.unsubscribed_at is None:
        sub.unsubscribed_at = timezone.now()
        sub.save(update_fields=["unsubscribed_at"])
    return sub


@transaction.atomic
def subscriber_delete(*, subscriber_id: int, actor) -> None:
    """Forget a subscriber (its past deliveries stay, without the link)."""
    Subscriber.objects.filter(pk=subscriber_id).delete()
