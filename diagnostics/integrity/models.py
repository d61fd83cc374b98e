"""Data integrity checks per target database, their runs and per-check results.

Imported by diagnostics.models (so the app label is "diagnostics" and migrations live there).
Writes go through diagnostics.integrity.services; SQL is built by diagnostics.integrity.compiler.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from diagnostics.models import (
    BaseRun,
    ResultJSONField,
    RunStatus,
    run_indexes,
    run_status_valid,
)


class IntegrityKind(models.TextChoices):
    ORPHANS = "orphans", "Orphaned rows"
    DUPLICATES = "duplicates", "Duplicates"
    ROW_COUNT = "row_count", "Record count"
    CRITICAL_COUNT = "critical_count", "Critical records"
    BUSINESS_RULE = "business_rule", "Business rule"


class IntegritySeverity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class IntegrityCheck(models.Model):
    """One data integrity check on one target database.

    Structured kinds name tables and columns (compiled with psycopg.sql.Identifier); only
    `predicate` (a WHERE condition) and `query` (a whole SELECT) are user-written SQL, and
    those are validated as a single read-only SELECT before they are saved or run.
    """

    target = models.ForeignKey(
        "diagnostics.TargetDatabase", on_delete=models.CASCADE, related_name="integrity_checks"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=IntegrityKind.choices)
    enabled = models.BooleanField(default=True)
    severity = models.CharField(
        max_length=10, choices=IntegritySeverity.choices, default=IntegritySeverity.HIGH
    )

    # The table checked: the child of a relationship (orphans), the table scanned otherwise.
    schema_name = models.CharField(max_length=63, default="public")
    table_name = models.CharField(max_length=63, blank=True)
    # orphans: the child's referencing columns; duplicates: the column set that must be unique.
    columns = ArrayField(models.CharField(max_length=63), default=list, blank=True)
    # orphans: the referenced (parent) table and columns, in the same order as `columns`.
    parent_schema = models.CharField(max_length=63, blank=True)
    parent_table = models.CharField(max_length=63, blank=True)
    parent_columns = ArrayField(models.CharField(max_length=63), default=list, blank=True)
    # A WHERE condition: which rows count (critical_count), which rows break the rule
    # (business_rule), or an optional filter (row_count, duplicates, orphans).
    predicate = models.TextField(blank=True)
    # business_rule alternative to table + predicate: one SELECT whose rows are violations.
    query = models.TextField(blank=True)
    # row_count: the expected range; critical_count: min_count is the minimum required.
    min_count = models.BigIntegerField(null=True, blank=True)
    max_count = models.BigIntegerField(null=True, blank=True)
    # A statement timeout for this check alone (big tables); capped by
    # QUELL_INTEGRITY_MAX_STATEMENT_TIMEOUT_MS. Empty: QUELL_INTEGRITY_STATEMENT_TIMEOUT_MS.
    timeout_ms = models.PositiveIntegerField(null=True, blank=True)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "diagnostics_integritycheck"  # created under diagnostics; kept
        ordering = ["target_id", "name"]
        constraints = [
            models.UniqueConstraint(fields=["target", "name"], name="integrity_check_name_once"),
            models.CheckConstraint(
                condition=Q(kind__in=IntegrityKind.values), name="integrity_check_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(severity__in=IntegritySeverity.values),
                name="integrity_check_severity_valid",
            ),
            models.CheckConstraint(
                condition=Q(min_count__isnull=True)
                | Q(max_count__isnull=True)
                | Q(min_count__lte=models.F("max_count")),
                name="integrity_check_range_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def gate_key(self) -> str:
        """The key a postmortem action item uses to be gated on this check."""
        return f"integrity:{self.pk}"


class IntegrityPurpose(models.TextChoices):
    BASELINE = "baseline", "Baseline"
    VERIFICATION = "verification", "Verification"
    ADHOC = "adhoc", "Ad hoc"
    # Started by a monitor's sweep (diagnostics.detection), never by a person or an incident.
    MONITOR = "monitor", "Monitor"


# Every kind of run has the same statuses (diagnostics.models.BaseRun); the old name stays.
IntegrityRunStatus = RunStatus


class IntegrityResultStatus(models.TextChoices):
    OK = "ok", "OK"
    VIOLATION = "violation", "Violation"
    ERROR = "error", "Error"


class IntegrityRun(BaseRun):
    """One execution of a target's integrity checks (all enabled ones, or the listed ones)."""

    # What a run shows, in the admin and the API: what it was, when, and what it found.
    RUN_FIELDS = (
        "target",
        "incident",
        "purpose",
        "baseline",
        "check_ids",
        "requested_by",
        "status",
        "queued_at",
        "started_at",
        "finished_at",
    )
    OUTCOME_FIELDS = ("checks_total", "checks_violated", "checks_errored", "summary", "error")

    target = models.ForeignKey(
        "diagnostics.TargetDatabase", on_delete=models.PROTECT, related_name="integrity_runs"
    )
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="integrity_runs",
    )
    purpose = models.CharField(
        max_length=20, choices=IntegrityPurpose.choices, default=IntegrityPurpose.ADHOC
    )
    # A verification is compared with this baseline (the latest one before it, by default).
    baseline = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="verifications"
    )
    # Empty = every enabled check of the target at execution time.
    check_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    checks_total = models.PositiveIntegerField(default=0)
    checks_violated = models.PositiveIntegerField(default=0)
    checks_errored = models.PositiveIntegerField(default=0)
    summary = models.TextField(blank=True)

    class Meta(BaseRun.Meta):
        db_table = "diagnostics_integrityrun"  # created under diagnostics; kept
        indexes = run_indexes("irun")
        constraints = [
            run_status_valid("irun"),
            models.CheckConstraint(
                condition=Q(purpose__in=IntegrityPurpose.values), name="irun_purpose_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"integrity {self.purpose} #{self.pk} on target {self.target_id} ({self.status})"


class IntegrityResult(models.Model):
    """The outcome of one integrity check in one run (a snapshot: the check may change later)."""

    run = models.ForeignKey(IntegrityRun, on_delete=models.CASCADE, related_name="results")
    # Named so it does not shadow Model.check() (Django's system checks).
    integrity_check = models.ForeignKey(
        IntegrityCheck, null=True, blank=True, on_delete=models.SET_NULL, related_name="results"
    )
    check_name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=IntegrityKind.choices)
    severity = models.CharField(max_length=10, choices=IntegritySeverity.choices)
    status = models.CharField(max_length=10, choices=IntegrityResultStatus.choices)
    # Violating rows (orphans, duplicate groups, rule matches) or the counted rows.
    count = models.BigIntegerField(null=True, blank=True)
    # What the count was held against, e.g. {"min": 1} or {"max": 0}.
    expected = models.JSONField(default=dict, blank=True)
    # Up to QUELL_INTEGRITY_SAMPLE_ROWS identifying rows (primary keys or the duplicate key).
    sample = ResultJSONField(default=list, blank=True)
    sample_columns = ArrayField(models.CharField(max_length=63), default=list, blank=True)
    # Further figures of the kind, e.g. {"rows": 7} (rows in the duplicate groups).
    metrics = models.JSONField(default=dict, blank=True)
    sql = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "diagnostics_integrityresult"  # created under diagnostics; kept
        ordering = ["run_id", "check_name", "id"]
        indexes = [models.Index(fields=["integrity_check", "run"], name="iresult_check_run")]
        constraints = [
            models.UniqueConstraint(fields=["run", "integrity_check"], name="iresult_once_per_run"),
            models.CheckConstraint(
                condition=Q(status__in=IntegrityResultStatus.values), name="iresult_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.check_name}: {self.status} ({self.count})"
