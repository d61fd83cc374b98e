"""Incidents, the people responding to them, and their append-only timeline.

Models hold data and invariants only; every write goes through `incidents.services`.
"""

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from config.validators import refuse_control_characters

from .names import display_name
from .severity import Severity


class Kind(models.TextChoices):
    AVAILABILITY = "availability", "Availability"
    PERFORMANCE = "performance", "Performance"
    DATA_INTEGRITY = "data_integrity", "Data integrity"
    OTHER = "other", "Other"


class Status(models.TextChoices):
    INVESTIGATING = "investigating", "Investigating"
    IDENTIFIED = "identified", "Identified"
    MONITORING = "monitoring", "Monitoring"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"


OPEN_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING)
# An incident's lifecycle timestamps, in the order they happen (the admin and the API list them).
LIFECYCLE_TIMES = (
    "detected_at",
    "declared_at",
    "acknowledged_at",
    "identified_at",
    "mitigated_at",
    "resolved_at",
    "closed_at",
    "updated_at",
)
# The initial assessment (playbook: Confirm the Issue, Assess Severity): the declare and edit
# forms, the admin's fieldset and the editable fields share it.
ASSESSMENT_FIELDS = (
    "confirmed",
    "reproducible",
    "scope",
    "users_affected_percent",
    "functionality_impacted",
    "business_impact",
)


class DetectionSource(models.TextChoices):
    MONITOR = "monitor", "Monitor"
    ALERT = "alert", "Alert"
    USER_REPORT = "user_report", "User report"
    INTERNAL_REPORT = "internal_report", "Internal report"
    API = "api", "API"


class Incident(models.Model):
    title = models.CharField(max_length=200, validators=[refuse_control_characters])
    slug = models.SlugField(max_length=60)
    description = models.TextField(blank=True, validators=[refuse_control_characters])
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.OTHER)
    severity = models.CharField(max_length=4, choices=Severity.choices)
    status = models.CharField(
        max_length=20, choices=Status.choices, default=Status.INVESTIGATING, db_index=True
    )

    # Detection
    detection_source = models.CharField(
        max_length=20, choices=DetectionSource.choices, default=DetectionSource.INTERNAL_REPORT
    )
    detected_by = models.CharField(
        max_length=200, blank=True, help_text="Name of the person or system that noticed it."
    )
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="declared_incidents",
    )

    # Initial assessment (playbook: Confirm the Issue, Assess Severity)
    confirmed = models.BooleanField(
        default=False, help_text="Verified by running diagnostic queries."
    )
    reproducible = models.BooleanField(null=True, blank=True)
    scope = models.TextField(blank=True, help_text="Specific queries or tables involved.")
    users_affected_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        null=True,
        blank=True,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
    )
    functionality_impacted = models.TextField(blank=True)
    business_impact = models.TextField(blank=True)

    # Communication channels
    channel_name = models.CharField(max_length=80, unique=True)
    bridge_url = models.URLField(blank=True)

    # Lifecycle times
    detected_at = models.DateTimeField()
    declared_at = models.DateTimeField(db_index=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    identified_at = models.DateTimeField(null=True, blank=True)
    mitigated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-declared_at", "-id"]
        indexes = [
            models.Index(fields=["severity", "-declared_at"], name="incident_severity_declared"),
            models.Index(fields=["status", "-declared_at"], name="incident_status_declared"),
            models.Index(fields=["kind", "-declared_at"], name="incident_kind_declared"),
            # Incremental sync (updated_after) reads the incidents changed since a time.
            models.Index(fields=["updated_at", "id"], name="incident_updated"),
            # Text search (selectors.incident_search: ILIKE '%term%' over these columns) reads
            # trigram indexes instead of the whole table when the term is rare.
            *(
                GinIndex(fields=[name], opclasses=["gin_trgm_ops"], name=f"incident_{name}_trgm")
                for name in ("title", "description", "channel_name", "detected_by")
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(users_affected_percent__gte=0) & Q(users_affected_percent__lte=100)
                | Q(users_affected_percent__isnull=True),
                name="incident_users_affected_percent_range",
            ),
            models.CheckConstraint(
                condition=Q(severity__in=Severity.values), name="incident_severity_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=Status.values), name="incident_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} [{self.severity}] {self.title}"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


class ResponderRole(models.TextChoices):
    INCIDENT_COMMANDER = "incident_commander", "Incident Commander"
    TECHNICAL_LEAD = "technical_lead", "Technical Lead"
    OPERATIONS_LEAD = "operations_lead", "Operations Lead"
    COMMUNICATIONS_LEAD = "communications_lead", "Communications Lead"
    OTHER = "other", "Other"


class ResponderAssignment(models.Model):
    """Who holds a role on an incident, and since when. Relieved rows are the history."""

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="assignments")
    role = models.CharField(max_length=30, choices=ResponderRole.choices)
    # For ResponderRole.OTHER: the role's own name ("Database specialist", "Scribe", ...).
    role_name = models.CharField(max_length=80, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="incident_assignments"
    )
    assigned_at = models.DateTimeField()
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    relieved_at = models.DateTimeField(null=True, blank=True)
    relieved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )

    class Meta:
        ordering = ["assigned_at", "id"]
        constraints = [
            # One current holder per named role; "other" roles are distinguished by name.
            models.UniqueConstraint(
                fields=["incident", "role", "role_name"],
                condition=Q(relieved_at__isnull=True),
                name="one_active_holder_per_role",
            ),
            models.CheckConstraint(
                condition=~Q(role="other") | ~Q(role_name=""),
                name="other_role_needs_a_name",
                violation_error_message="Name the role (for example 'Database specialist').",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.role_label}: {self.user}"

    @property
    def role_label(self) -> str:
        return self.role_name if self.role == ResponderRole.OTHER else self.get_role_display()

    @property
    def is_active(self) -> bool:
        return self.relieved_at is None


class EventKind(models.TextChoices):
    DECLARED = "declared", "Declared"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    STATUS_CHANGED = "status_changed", "Status changed"
    SEVERITY_CHANGED = "severity_changed", "Severity changed"
    FIELDS_CHANGED = "fields_changed", "Details changed"
    ROLE_ASSIGNED = "role_assigned", "Role assigned"
    ROLE_RELIEVED = "role_relieved", "Role relieved"
    NOTE = "note", "Note"
    REPORT = "report", "Report received"
    DIAGNOSTIC_RUN = "diagnostic_run", "Diagnostic run"
    TRIAGE = "triage", "Triage"
    REMEDIATION = "remediation", "Remediation"
    RUNBOOK_STEP = "runbook_step", "Runbook step"
    COMMS = "comms", "Communication sent"
    INTEGRITY = "integrity", "Integrity verification"
    POSTMORTEM = "postmortem", "Postmortem"
    ALERT = "alert", "Alert"


class TimelineEvent(models.Model):
    """One thing that happened during an incident.

    Append-only: no code path updates or deletes a row, and a database trigger (migration 0002)
    refuses UPDATE and DELETE so that a bug, a shell session or the admin cannot rewrite history.
    A correction is a new event.
    """

    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, related_name="timeline")
    occurred_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    # Who acted when no user did: "system", "diagnostics", "alertmanager", ...
    actor_label = models.CharField(max_length=80, blank=True)
    kind = models.CharField(max_length=30, choices=EventKind.choices)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        indexes = [
            models.Index(fields=["incident", "occurred_at", "id"], name="timeline_incident_time"),
        ]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message[:60]}"

    @property
    def actor_display(self) -> str:
        if self.actor_id:
            return display_name(self.actor)
        return self.actor_label or "system"


class ParkedTask(models.Model):
    """A Celery task that could not be sent (broker down or stalled), kept until it is sent.

    incidents.dispatch writes it and sends it again (beat's sweep, a worker becoming ready);
    the tasks are idempotent, so a message that did reach the broker before the error is
    harmless twice.
    """

    task = models.CharField(max_length=200)
    args = models.JSONField(default=list, blank=True)
    kwargs = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    eta = models.DateTimeField(null=True, blank=True)
    parked_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["parked_at", "id"]

    def __str__(self) -> str:
        return f"{self.task}{tuple(self.args)} parked {self.parked_at:%Y-%m-%d %H:%M:%S}"


# Triage trees and walks are defined in incidents.triage.models and belong to this app: importing
# that module here registers them when Django loads the app's models.
from .triage import models as triage_models  # noqa: E402, F401
