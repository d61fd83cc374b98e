"""Runbooks: checklists defined as data (seeded by migration, editable in the admin) and their
runs on incidents. A run copies the steps when it starts, so editing a runbook later never
rewrites what responders ticked."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q


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
        ordering = ["run", "position", "id"]

    def __str__(self) -> str:
        return f"{'[x]' if self.done else '[ ]'} {self.title}"
