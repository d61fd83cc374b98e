"""Detection state: which open incident a stream of signals feeds, and each alert's last word.

Before these models, dedup read the append-only timeline as a lookup table (by a JSON key, with
no index), serialised deliveries on an advisory lock and counted repeats in Redis. Now:

- `AlertGroup`: one row per routing key while its incident is open (an Alertmanager
  notification's group, a target, a host, an unknown sender's fingerprint). A partial unique
  constraint lets exactly one delivery declare the incident of a key; the others wait on the
  index and then join it.
- `Alert`: one row per alert (fingerprint) on an incident: its last status, when it was first
  and last seen, and the repeats not written to the timeline since its last record.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from incidents.models import Kind
from incidents.severity import Severity


class SignalStatus(models.TextChoices):
    FIRING = "firing", "Firing"
    RESOLVED = "resolved", "Resolved"


class SignalSource(models.TextChoices):
    ALERTMANAGER = "alertmanager", "Alertmanager"
    WEBHOOK = "webhook", "Webhook"
    MONITOR = "monitor", "Quell monitor"


class AlertGroup(models.Model):
    """A routing key bound to the open incident its signals go to."""

    key = models.CharField(
        max_length=255,
        help_text=(
            "alertmanager:<hash of groupKey>, target:<id>, host:<host>:<port> or "
            "fingerprint:<fingerprint>:<kind>."
        ),
    )
    label = models.CharField(
        max_length=300, blank=True, help_text="What the key means, for people."
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="alert_groups"
    )
    target = models.ForeignKey(
        "diagnostics.TargetDatabase",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alert_groups",
    )
    is_open = models.BooleanField(default=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(is_open=True), name="alertgroup_one_open_per_key"
            ),
            models.CheckConstraint(
                condition=Q(is_open=True, closed_at__isnull=True)
                | Q(is_open=False, closed_at__isnull=False),
                name="alertgroup_closed_at_iff_closed",
            ),
        ]
        indexes = [models.Index(fields=["incident"], name="alertgroup_incident")]

    def __str__(self) -> str:
        return self.label or self.key


class Alert(models.Model):
    """One alert (by fingerprint) on an incident, as its sender last told it."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.CASCADE, related_name="alerts"
    )
    group = models.ForeignKey(
        AlertGroup, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts"
    )
    fingerprint = models.CharField(max_length=200)
    source = models.CharField(max_length=20, choices=SignalSource.choices)
    name = models.CharField(max_length=200, help_text="Alert name, or the monitor's rule.")
    title = models.CharField(max_length=200)
    severity = models.CharField(max_length=4, choices=Severity.choices)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    target = models.ForeignKey(
        "diagnostics.TargetDatabase",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="alerts",
    )
    target_hint = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=10, choices=SignalStatus.choices)
    url = models.CharField(max_length=2000, blank=True)
    first_seen_at = models.DateTimeField()
    last_seen_at = models.DateTimeField()
    # The last status written to the timeline, and when: repeats within the window are counted
    # here instead of written.
    recorded_status = models.CharField(max_length=10, choices=SignalStatus.choices)
    recorded_at = models.DateTimeField()
    repeats = models.PositiveIntegerField(
        default=0, help_text="Deliveries not written to the timeline since its last record."
    )
    deliveries = models.PositiveIntegerField(default=1)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "fingerprint"], name="alert_one_per_incident_fingerprint"
            )
        ]
        indexes = [
            models.Index(fields=["fingerprint"], name="alert_fingerprint"),
            models.Index(fields=["target", "-last_seen_at"], name="alert_target_recent"),
        ]
        ordering = ["-last_seen_at", "-id"]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"


class MonitorJudgement(models.Model):
    """Which monitor started a run, with which rules, and when the run was judged.

    A row is written with the run (one of the two run kinds) when a sweep starts it; judging
    it sets `evaluated_at` in the same transaction as the incidents it opens, so a run is
    judged exactly once and by its own monitor's rules, whatever happens to the cache.
    """

    diagnostic_run = models.OneToOneField(
        "diagnostics.DiagnosticRun",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="monitor_judgement",
    )
    integrity_run = models.OneToOneField(
        "integrity.IntegrityRun",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="monitor_judgement",
    )
    monitor = models.CharField(max_length=100, default="default")
    rules = models.JSONField(default=dict, blank=True, help_text="The monitor's rule overrides.")
    evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(diagnostic_run__isnull=False, integrity_run__isnull=True)
                | Q(diagnostic_run__isnull=True, integrity_run__isnull=False),
                name="monitorjudgement_one_run",
            )
        ]

    def __str__(self) -> str:
        run = self.diagnostic_run_id or self.integrity_run_id
        return f"{self.monitor} on run {run} ({'judged' if self.evaluated_at else 'pending'})"
