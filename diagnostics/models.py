"""Target databases, the incidents they are affected by, diagnostic runs and their results.

Models hold data and invariants; writes go through diagnostics.services. Credentials are kept
only as Fernet tokens (diagnostics.crypto) and never appear in repr, str, forms or serializers.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from . import crypto


class Environment(models.TextChoices):
    PRODUCTION = "production", "Production"
    STAGING = "staging", "Staging"
    OTHER = "other", "Other"


class SSLMode(models.TextChoices):
    DISABLE = "disable", "disable"
    ALLOW = "allow", "allow"
    PREFER = "prefer", "prefer"
    REQUIRE = "require", "require"
    VERIFY_CA = "verify-ca", "verify-ca"
    VERIFY_FULL = "verify-full", "verify-full"


class TargetDatabase(models.Model):
    """A PostgreSQL database Quell examines (read-only except for guarded remediation)."""

    name = models.CharField(max_length=100, unique=True)
    environment = models.CharField(
        max_length=20, choices=Environment.choices, default=Environment.PRODUCTION, db_index=True
    )
    host = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(
        default=5432, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    database = models.CharField(max_length=128, blank=True)
    user = models.CharField(max_length=128, blank=True)
    sslmode = models.CharField(max_length=12, choices=SSLMode.choices, default=SSLMode.PREFER)
    # libpq "options" (for example "-c search_path=app"); never a place for credentials.
    options = models.CharField(max_length=500, blank=True)
    tags = ArrayField(models.CharField(max_length=50), default=list, blank=True)
    # Names alerts use for this target besides its own (lower-case): an exporter's `instance`
    # label such as "shop-db:9187", a host alias. Detection matches them exactly.
    aliases = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    enabled = models.BooleanField(default=True)
    remediation_allowed = models.BooleanField(
        default=False,
        help_text="Allow Quell to cancel queries or terminate backends on this target.",
    )
    # Per-check threshold overrides: {"long_running_queries": {"warning_s": 60}, ...}
    thresholds = models.JSONField(default=dict, blank=True)

    # Fernet tokens (diagnostics.crypto). Never read these directly outside this module.
    password_encrypted = models.TextField(blank=True, editable=False)
    dsn_encrypted = models.TextField(blank=True, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [GinIndex(fields=["tags"], name="target_tags_gin")]
        constraints = [
            models.CheckConstraint(
                condition=Q(environment__in=Environment.values), name="target_environment_valid"
            ),
            models.CheckConstraint(
                condition=Q(sslmode__in=SSLMode.values), name="target_sslmode_valid"
            ),
            models.CheckConstraint(
                condition=Q(port__gte=1) & Q(port__lte=65535), name="target_port_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        # Deliberately without credentials (Django's default repr is str(), but be explicit).
        return f"<TargetDatabase {self.pk}: {self.name} ({self.environment})>"

    # --- credentials -----------------------------------------------------------------------
    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    @property
    def has_dsn(self) -> bool:
        return bool(self.dsn_encrypted)

    def set_password(self, raw: str) -> None:
        """Store a new password (empty clears it). Call save() afterwards."""
        self.password_encrypted = crypto.encrypt(raw or "")

    def set_dsn(self, raw: str) -> None:
        """Store a whole libpq DSN/URI instead of separate settings (empty clears it)."""
        self.dsn_encrypted = crypto.encrypt(raw or "")

    def to_connection_spec(self):
        """The connection settings diagnostics.target needs, with secrets decrypted."""
        from .target import ConnectionSpec

        return ConnectionSpec(
            host=self.host,
            port=self.port,
            dbname=self.database,
            user=self.user,
            password=crypto.decrypt(self.password_encrypted),
            sslmode=self.sslmode,
            options=self.options,
            dsn=crypto.decrypt(self.dsn_encrypted),
        )

    @property
    def address(self) -> str:
        """host:port/database, for display (no user, no secret)."""
        return f"{self.host or 'dsn'}:{self.port}/{self.database}"


class IncidentTarget(models.Model):
    """A target database affected by an incident. Removing the link deletes the row; the
    timeline keeps the history of both."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="affected_targets"
    )
    target = models.ForeignKey(
        TargetDatabase, on_delete=models.PROTECT, related_name="incident_links"
    )
    added_at = models.DateTimeField(auto_now_add=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "target"], name="incident_target_once")
        ]

    def __str__(self) -> str:
        return f"incident #{self.incident_id} affects {self.target}"


class Trigger(models.TextChoices):
    MANUAL = "manual", "Manual"
    INCIDENT = "incident", "Incident"
    MONITOR = "monitor", "Monitor"
    API = "api", "API"
    SCHEDULE = "schedule", "Schedule"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING)


class ResultStatus(models.TextChoices):
    # Mirrors diagnostics.checks.CheckStatus (kept here so the model does not import checks).
    OK = "ok", "OK"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"
    ERROR = "error", "Error"
    SKIPPED = "skipped", "Skipped"


class BaseRun(models.Model):
    """What every kind of run shares (diagnostic and integrity runs): who asked, the status and
    its times, and the bookkeeping of diagnostics.pipeline, which enqueues, claims, finishes
    and sweeps every kind the same way. Each concrete run adds its `target` and `incident`
    (their reverse names differ) and what its results add up to."""

    ACTIVE_STATUSES = ACTIVE_RUN_STATUSES
    # The pipeline's record of a run, as the admin shows it: where it is, when, and why it failed.
    PIPELINE_FIELDS = (
        "status",
        "queued_at",
        "started_at",
        "finished_at",
        "deadline",
        "requeues",
        "celery_task_id",
        "error",
    )

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(
        max_length=20, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    queued_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Past this time the sweep re-queues (once) or fails the run: nothing stays hanging.
    deadline = models.DateTimeField()
    requeues = models.PositiveSmallIntegerField(default=0)
    celery_task_id = models.CharField(max_length=255, blank=True)
    # Identifies the execution that owns a running run: a late, superseded execution (re-queued
    # by the sweep) finds a different token and discards its results instead of mixing them in.
    execution_token = models.CharField(max_length=64, blank=True)
    error = models.TextField(blank=True)
    # When the run last changed (queued, started, finished, summarised): incremental sync
    # (`updated_after`) reads the runs changed since a tool's last read. Every write in the
    # pipeline names it.
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True
        ordering = ["-queued_at", "-id"]

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None


def run_indexes(prefix: str) -> list[models.Index]:
    """A run model's indexes: by target and by incident (newest first), and the active runs by
    deadline (the sweep). Named per model with `prefix`, as their tables were created."""
    return [
        models.Index(fields=["target", "-queued_at"], name=f"{prefix}_target_queued"),
        models.Index(fields=["incident", "-queued_at"], name=f"{prefix}_incident_queued"),
        models.Index(
            fields=["deadline"],
            condition=Q(status__in=["queued", "running"]),
            name=f"{prefix}_active_deadline",
        ),
    ]


def run_status_valid(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(status__in=RunStatus.values), name=f"{prefix}_status_valid"
    )


class DiagnosticRun(BaseRun):
    """One execution of a suite of checks against one target."""

    target = models.ForeignKey(TargetDatabase, on_delete=models.PROTECT, related_name="runs")
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="diagnostic_runs",
    )
    trigger = models.CharField(max_length=20, choices=Trigger.choices, default=Trigger.MANUAL)
    # {} = every check; {"family": "locks"}; {"keys": ["locks", "long_running_queries"]}
    suite = models.JSONField(default=dict, blank=True)
    worst_status = models.CharField(max_length=10, choices=ResultStatus.choices, blank=True)

    class Meta(BaseRun.Meta):
        indexes = run_indexes("run")
        constraints = [
            run_status_valid("run"),
            models.CheckConstraint(
                condition=Q(trigger__in=Trigger.values), name="run_trigger_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} on {self.target} ({self.status})"

    @property
    def suite_label(self) -> str:
        if self.suite.get("keys"):
            return ", ".join(self.suite["keys"])
        if self.suite.get("family"):
            return f"family {self.suite['family']}"
        return "all checks"


class ResultJSONField(models.JSONField):
    """A JSONField for rows written in bulk with large payloads (a run's findings and samples).

    Django 5.2 bulk-inserts on PostgreSQL through UNNEST of one array per column, and psycopg's
    client-side binding then quotes every element of the jsonb[] array in Python: storing a
    run's 24 results (about 100 kB of findings at 100 tables) took 13.5 ms of an 80 ms run.
    A field with `get_placeholder` opts its model's bulk inserts out of UNNEST
    (django.db.backends.postgresql.compiler), so each value is bound on its own, escaped by
    libpq: 5 ms. The column is an ordinary jsonb.
    """

    def get_placeholder(self, value, compiler, connection):
        return "%s"


class CheckResult(models.Model):
    """The outcome of one check in one run."""

    # What a result shows, in the admin and the API (besides its run and id).
    SHOWN_FIELDS = (
        "key",
        "title",
        "family",
        "status",
        "summary",
        "findings",
        "metrics",
        "duration_ms",
        "error",
        "fix",
    )

    run = models.ForeignKey(DiagnosticRun, on_delete=models.CASCADE, related_name="results")
    key = models.CharField(max_length=100)
    title = models.CharField(max_length=200)
    family = models.CharField(max_length=30)
    status = models.CharField(max_length=10, choices=ResultStatus.choices)
    summary = models.TextField(blank=True)
    findings = ResultJSONField(default=list, blank=True)
    metrics = ResultJSONField(default=dict, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    fix = models.TextField(blank=True)

    class Meta:
        ordering = ["run_id", "id"]
        indexes = [models.Index(fields=["key", "run"], name="result_key_run")]
        constraints = [
            models.UniqueConstraint(fields=["run", "key"], name="result_once_per_run"),
            models.CheckConstraint(
                condition=Q(status__in=ResultStatus.values), name="result_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.status}"


class OwnSession(models.Model):
    """A session Quell opened on a target (diagnostics.own_sessions): immune from remediation."""

    pid = models.IntegerField()
    backend_start = models.DateTimeField()
    application_name = models.CharField(max_length=64, blank=True)
    opened_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["pid", "backend_start"], name="own_session_identity")
        ]

    def __str__(self) -> str:
        return (
            f"{self.application_name} pid {self.pid} since {self.backend_start:%Y-%m-%d %H:%M:%S}"
        )
