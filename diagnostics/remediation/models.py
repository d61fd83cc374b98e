"""Remediation records: what was previewed, what the responder confirmed, what happened to each
backend. Kept for audit; the incident's timeline carries the summary."""

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
