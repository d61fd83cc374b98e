"""Remediation records: what was previewed, what the responder confirmed, what happened to each
backend. Kept for audit; the incident's timeline carries the summary.

Runbooks: checklists defined as data (seeded by migration, editable in the admin) and their
runs on incidents. A run copies the steps when it starts, so editing a runbook later never
rewrites what responders ticked."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


class RemediationKind(models.TextChoices):
    CANCEL = "cancel", "Cancel query"
    TERMINATE = "terminate", "Terminate backend"
    CANCEL_THEN_TERMINATE = "cancel_then_terminate", "Cancel, then terminate after a grace period"


class RemediationStatus(models.TextChoices):
    PREVIEWED = "previewed", "Previewed"
    EXECUTING = "executing", "Executing"
    # Cancelled; the backends still running after the grace period get terminated.
    ESCALATION_PENDING = "escalation_pending", "Waiting to terminate"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RemediationAction(models.Model):
    """One cancel/terminate request against one target: preview, confirmation, results."""

    target = models.ForeignKey(
        "diagnostics.TargetDatabase", on_delete=models.PROTECT, related_name="remediations"
    )
    incident = models.ForeignKey(
        "incidents.Incident",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="remediations",
    )
    kind = models.CharField(max_length=30, choices=RemediationKind.choices)
    # The filter the preview used: {"pid": 123} or {"states": [...], "min_duration_s": 300, ...}
    filters = models.JSONField(default=dict, blank=True)
    # Superuser and replication roles only when an admin asked for it explicitly.
    force = models.BooleanField(default=False)
    grace_s = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(
        max_length=20,
        choices=RemediationStatus.choices,
        default=RemediationStatus.PREVIEWED,
        db_index=True,
    )
    server_version_num = models.PositiveIntegerField(null=True, blank=True)
    database = models.CharField(max_length=128, blank=True)
    # Every backend the filter found, each with "eligible" and, when not, the guardrail's reason.
    preview = models.JSONField(default=list, blank=True)
    # [{"pid": ..., "backend_start": ...}] the responder confirmed (a subset of the eligible).
    confirmed = models.JSONField(default=list, blank=True)
    # Per confirmed pid: {"pid", "backend_start", "outcome", "detail"}.
    results = models.JSONField(default=list, blank=True)
    escalation_results = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)
    error = models.TextField(blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    executed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    previewed_at = models.DateTimeField()
    executed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    escalate_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "diagnostics_remediationaction"  # created under diagnostics; kept
        ordering = ["-previewed_at", "-id"]
        indexes = [
            models.Index(fields=["incident", "-previewed_at"], name="remediation_incident"),
            models.Index(fields=["target", "-previewed_at"], name="remediation_target"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=RemediationKind.values), name="remediation_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=RemediationStatus.values), name="remediation_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"remediation #{self.pk} ({self.kind}) on {self.target_id}: {self.status}"

    @property
    def eligible(self) -> list[dict]:
        return [row for row in self.preview or [] if row.get("eligible")]

    @property
    def refused(self) -> list[dict]:
        return [row for row in self.preview or [] if not row.get("eligible")]


class StepAction(models.TextChoices):
    """A Quell action a step can link to."""

    NONE = "", "None"
    RUN_DIAGNOSTICS = "run_diagnostics", "Run diagnostics"
    INTEGRITY_VERIFICATION = "integrity_verification", "Integrity verification"
    REMEDIATION_PREVIEW = "remediation_preview", "Remediation preview"


class Runbook(models.Model):
    """A named checklist (the playbook's resolution strategies ship as defaults)."""

    key = models.SlugField(max_length=60, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True, help_text="Inactive runbooks cannot be started.")

    class Meta:
        db_table = "diagnostics_runbook"  # created under diagnostics; kept
        ordering = ["position", "title"]

    def __str__(self) -> str:
        return self.title


class RunbookStep(models.Model):
    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True, help_text="Commands or instructions (plain text).")
    action = models.CharField(max_length=30, choices=StepAction.choices, blank=True, default="")

    class Meta:
        db_table = "diagnostics_runbookstep"  # created under diagnostics; kept
        ordering = ["runbook", "position", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(action__in=StepAction.values), name="runbook_step_action_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.position}. {self.title}"


class IncidentRunbook(models.Model):
    """A runbook started on an incident (one run per runbook and incident)."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="runbooks"
    )
    runbook = models.ForeignKey(Runbook, on_delete=models.PROTECT, related_name="runs")
    title = models.CharField(max_length=200)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "diagnostics_incidentrunbook"  # created under diagnostics; kept
        ordering = ["started_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["incident", "runbook"], name="incident_runbook_once")
        ]

    def __str__(self) -> str:
        return f"{self.title} on incident #{self.incident_id}"

    @property
    def progress(self) -> tuple[int, int]:
        steps = list(self.steps.all())
        return sum(1 for s in steps if s.done), len(steps)


class IncidentRunbookStep(models.Model):
    """One step of a started runbook, copied from its definition, ticked or not."""

    run = models.ForeignKey(IncidentRunbook, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    action = models.CharField(max_length=30, choices=StepAction.choices, blank=True, default="")
    done = models.BooleanField(default=False)
    done_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    done_at = models.DateTimeField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        db_table = "diagnostics_incidentrunbookstep"  # created under diagnostics; kept
        ordering = ["run", "position", "id"]

    def __str__(self) -> str:
        return f"{'[x]' if self.done else '[ ]'} {self.title}"
