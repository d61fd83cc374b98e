"""Message templates, status updates, channels and their deliveries, reminders, components and
subscribers of the public status page.

Models hold data and invariants only; writes go through `comms.services`, reads through
`comms.selectors`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from config.validators import refuse_control_characters
from incidents.models import Status
from incidents.names import display_name

# The statuses an update can announce (the public never sees "closed").
PUBLIC_STATUS_CHOICES = [(s.value, s.label) for s in Status if s != Status.CLOSED]


class Audience(models.TextChoices):
    INTERNAL = "internal", "Internal"
    EXTERNAL = "external", "External"


class MessageTemplate(models.Model):
    """A message an author starts from: the playbook's six (plus Monitoring) ship as defaults.

    `subject` and `body` use Django's template language over the variables listed in
    `comms.rendering.VARIABLES`; what Quell cannot know renders as a visible "[TO FILL: ...]"
    marker. Editing a template never changes a sent update: updates store their rendered text.
    """

    key = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=120)
    audience = models.CharField(max_length=10, choices=Audience.choices)
    # The incident status an update from this template announces (external templates); the
    # status page shows it. Blank: the incident's status at the time.
    announces_status = models.CharField(
        max_length=20, choices=PUBLIC_STATUS_CHOICES, blank=True, default=""
    )
    subject = models.CharField(max_length=200, validators=[refuse_control_characters])
    body = models.TextField(validators=[refuse_control_characters])
    is_default = models.BooleanField(
        default=False, help_text="Shipped with Quell (from the playbook)."
    )
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=100)
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["audience", "position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(audience__in=Audience.values), name="template_audience_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.audience})"


class ComponentState(models.TextChoices):
    OPERATIONAL = "operational", "Operational"
    DEGRADED = "degraded", "Degraded performance"
    PARTIAL_OUTAGE = "partial_outage", "Partial outage"
    MAJOR_OUTAGE = "major_outage", "Major outage"


# Worse states rank higher; the page's overall state is the worst of its components.
COMPONENT_STATE_RANK = {
    ComponentState.OPERATIONAL: 0,
    ComponentState.DEGRADED: 1,
    ComponentState.PARTIAL_OUTAGE: 2,
    ComponentState.MAJOR_OUTAGE: 3,
}


class Component(models.Model):
    """Something users know (a service, a database) shown on the status page with a state."""

    name = models.CharField(max_length=100, unique=True, validators=[refuse_control_characters])
    description = models.CharField(
        max_length=300, blank=True, validators=[refuse_control_characters]
    )
    # The diagnostics targets (databases) this component stands for: an incident affecting
    # one of them proposes a state for this component.
    targets = models.ManyToManyField(
        "diagnostics.TargetDatabase", blank=True, related_name="status_components"
    )
    state = models.CharField(
        max_length=20, choices=ComponentState.choices, default=ComponentState.OPERATIONAL
    )
    position = models.PositiveSmallIntegerField(default=100)
    visible = models.BooleanField(default=True)
    state_changed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=ComponentState.values), name="component_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class ComponentStateChange(models.Model):
    """A component entering a state: the history behind the status page's uptime figures."""

    component = models.ForeignKey(Component, on_delete=models.CASCADE, related_name="changes")
    state = models.CharField(max_length=20, choices=ComponentState.choices)
    changed_at = models.DateTimeField(db_index=True)
    # The update that set it (None when set by hand).
    status_update = models.ForeignKey(
        "StatusUpdate", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["component", "changed_at", "id"]
        indexes = [models.Index(fields=["component", "changed_at"], name="component_change_time")]

    def __str__(self) -> str:
        return f"{self.component_id} -> {self.state} at {self.changed_at:%Y-%m-%d %H:%M}"


class UpdateState(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"


class StatusUpdate(models.Model):
    """One message about an incident: a draft, then exactly the text that was sent."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="status_updates"
    )
    template = models.ForeignKey(
        MessageTemplate, null=True, blank=True, on_delete=models.SET_NULL, related_name="updates"
    )
    audience = models.CharField(max_length=10, choices=Audience.choices)
    # The incident status this update announces (investigating ... resolved).
    status = models.CharField(max_length=20, choices=PUBLIC_STATUS_CHOICES)
    subject = models.CharField(max_length=200, validators=[refuse_control_characters])
    body = models.TextField(validators=[refuse_control_characters])
    state = models.CharField(
        max_length=10, choices=UpdateState.choices, default=UpdateState.DRAFT, db_index=True
    )
    # Component states the author confirmed: {"<component id>": "<state>"}; applied on publish.
    component_states = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Who published when no user did ("quell" for the automatic initial notification).
    published_by_label = models.CharField(max_length=80, blank=True)

    class Meta:
        ordering = ["-published_at", "-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["incident", "audience", "state", "-published_at"],
                name="update_incident_published",
            ),
            models.Index(fields=["audience", "state", "-published_at"], name="update_public"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(audience__in=Audience.values), name="update_audience_valid"
            ),
            models.CheckConstraint(
                condition=Q(state=UpdateState.DRAFT) | Q(published_at__isnull=False),
                name="published_update_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.audience} update on incident #{self.incident_id}: {self.subject}"

    @property
    def is_published(self) -> bool:
        return self.state == UpdateState.PUBLISHED

    @property
    def author_display(self) -> str:
        user = self.published_by or self.created_by
        if user is not None:
            return display_name(user)
        return self.published_by_label or "system"


class ChannelKind(models.TextChoices):
    SLACK = "slack", "Slack-compatible webhook (Slack, Mattermost)"
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Signed generic webhook"


class ChannelAudience(models.TextChoices):
    INTERNAL = "internal", "Internal updates"
    EXTERNAL = "external", "External updates"
    ALL = "all", "All updates"


class Channel(models.Model):
    """Somewhere updates go. Secrets (webhook URL, signing key) are write-only in API and admin."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    audience = models.CharField(
        max_length=10, choices=ChannelAudience.choices, default=ChannelAudience.INTERNAL
    )
    # Routing: the severities this channel hears about (empty: every severity).
    severities = models.JSONField(default=list, blank=True)
    # Slack/webhook: the URL (a secret: an incoming-webhook URL is a credential).
    url = models.URLField(max_length=500, blank=True)
    # Generic webhook: the HMAC-SHA256 signing key.
    signing_secret = models.CharField(max_length=200, blank=True)
    # E-mail: fixed recipients, plus the stakeholder list of the incident's severity if asked.
    recipients = models.JSONField(default=list, blank=True)
    include_stakeholders = models.BooleanField(
        default=False,
        help_text="E-mail: also send to QUELL_STAKEHOLDERS for the incident's severity.",
    )
    receives_reminders = models.BooleanField(
        default=False, help_text="Next-update reminders are posted here too."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=ChannelKind.values), name="channel_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(audience__in=ChannelAudience.values), name="channel_audience_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def __repr__(self) -> str:
        # Never the URL or the key.
        return f"<Channel {self.pk}: {self.name} ({self.kind})>"

    def hears(self, *, audience: str, severity: str) -> bool:
        """True when updates of this audience about incidents of this severity route here."""
        if not self.enabled:
            return False
        if self.audience != ChannelAudience.ALL and self.audience != audience:
            return False
        return not self.severities or severity in self.severities


class Subscriber(models.Model):
    """An e-mail address that asked for external updates (double opt-in)."""

    email = models.EmailField(max_length=254)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmation_sent_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(Lower("email"), name="subscriber_email_unique_ci"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def is_active(self) -> bool:
        return self.confirmed_at is not None and self.unsubscribed_at is None


class DeliveryKind(models.TextChoices):
    UPDATE = "update", "Status update"
    REMINDER = "reminder", "Next-update reminder"
    CONFIRMATION = "confirmation", "Subscription confirmation"
    TEST = "test", "Test message"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Waiting to retry"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class Delivery(models.Model):
    """One message to one destination, with every attempt's outcome.

    The message itself (`subject`, `body`, `payload`) is fixed when the delivery is created;
    the destination's secrets are read from the channel at send time and never stored here.
    """

    kind = models.CharField(max_length=20, choices=DeliveryKind.choices)
    transport = models.CharField(max_length=10, choices=ChannelKind.choices)
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="comms_deliveries",
    )
    status_update = models.ForeignKey(
        StatusUpdate, null=True, blank=True, on_delete=models.PROTECT, related_name="deliveries"
    )
    channel = models.ForeignKey(
        Channel, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    subscriber = models.ForeignKey(
        Subscriber, null=True, blank=True, on_delete=models.SET_NULL, related_name="deliveries"
    )
    # E-mail recipients (for e-mail transports); a readable destination name otherwise.
    recipients = models.JSONField(default=list, blank=True)
    destination = models.CharField(max_length=200)
    subject = models.CharField(max_length=300)
    body = models.TextField()
    # Extra e-mail headers (List-Unsubscribe for subscribers) or webhook fields.
    extra = models.JSONField(default=dict, blank=True)

    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=6)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "deliveries"
        indexes = [
            models.Index(fields=["incident", "state"], name="delivery_incident_state"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=DeliveryState.values), name="delivery_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} to {self.destination}: {self.state}"


class ReminderLog(models.Model):
    """A next-update reminder sent for one due time: at most one per incident and due time."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="comms_reminders"
    )
    due_at = models.DateTimeField()
    sent_at = models.DateTimeField(auto_now_add=True)
    reminded_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "due_at"], name="one_reminder_per_due"),
        ]

    def __str__(self) -> str:
        return f"reminder for incident #{self.incident_id} due {self.due_at:%Y-%m-%d %H:%M}"


class UndeliveredInitialNotification(models.Model):
    """The automatic initial notification of an incident reached nobody (no internal channel
    for its severity): at most one per incident, so the timeline says it once."""

    incident = models.OneToOneField(
        "incidents.Incident",
        on_delete=models.CASCADE,
        related_name="comms_undelivered_initial_notification",
    )
    reason = models.CharField(max_length=500, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return f"initial notification of incident #{self.incident_id} not delivered"
