"""Postmortems, their revisions, action items (preventive measures) and review meetings.

Models hold data and invariants only; every write goes through `postmortems.services`.
"""

import datetime
import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from incidents.models import Incident


class PostmortemStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    PUBLISHED = "published", "Published"
    WAIVED = "waived", "Waived"


# The long, Markdown-formatted sections, in the order the playbook's report lists them. Shared by
# the form, the revision snapshots, the conflict merge, the export and the API.
SECTIONS: list[tuple[str, str]] = [
    ("summary", "Summary"),
    ("impact", "Impact"),
    ("actions_taken", "Actions taken"),
    ("root_cause", "Root cause"),
    ("contributing_factors", "Contributing factors"),
    ("response_effectiveness", "Response effectiveness"),
    ("went_well", "What went well"),
    ("went_badly", "What did not go well"),
    ("lessons_learned", "Lessons learned"),
    ("data_impact", "Data impact"),
    ("playbook_updates", "Playbook updates proposed"),
]
SECTION_NAMES = [name for name, _ in SECTIONS]
# Everything the optimistic-concurrency version covers.
VERSIONED_FIELDS = ["title", *SECTION_NAMES, "timeline_selection"]


class Postmortem(models.Model):
    """The post-incident report of one incident (playbook: Prepare Post-Incident Report)."""

    incident = models.OneToOneField(Incident, on_delete=models.PROTECT, related_name="postmortem")
    title = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20,
        choices=PostmortemStatus.choices,
        default=PostmortemStatus.DRAFT,
        db_index=True,
    )
    # Optimistic concurrency: every save names the version it started from and bumps it.
    version = models.PositiveIntegerField(default=1)

    summary = models.TextField(blank=True)
    impact = models.TextField(blank=True)
    actions_taken = models.TextField(blank=True)
    root_cause = models.TextField(blank=True)
    contributing_factors = models.TextField(blank=True)
    response_effectiveness = models.TextField(blank=True)
    went_well = models.TextField(blank=True)
    went_badly = models.TextField(blank=True)
    lessons_learned = models.TextField(blank=True)
    data_impact = models.TextField(blank=True)
    playbook_updates = models.TextField(blank=True)
    # The timeline entries that matter, chosen from the incident's full (append-only) timeline:
    # {"<timeline event id>": "author's annotation"}. The full log stays on the incident.
    timeline_selection = models.JSONField(default=dict, blank=True)

    # Review policy: when the post-incident review is due (from severity and resolution time).
    review_due_at = models.DateTimeField(null=True, blank=True)
    # Set once when the deadline passes with no review held (flag, and a timeline event).
    review_deadline_missed_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    waived_at = models.DateTimeField(null=True, blank=True)
    waived_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    waived_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=PostmortemStatus.values), name="postmortem_status_valid"
            ),
            models.CheckConstraint(
                condition=~Q(status="waived") | ~Q(waived_reason=""),
                name="postmortem_waiver_needs_reason",
            ),
        ]

    def __str__(self) -> str:
        return f"Postmortem of incident #{self.incident_id}: {self.title}"

    @property
    def is_editable(self) -> bool:
        return self.status in (PostmortemStatus.DRAFT, PostmortemStatus.IN_REVIEW)

    def snapshot(self) -> dict:
        """The versioned content, as stored in a revision."""
        return {name: getattr(self, name) for name in VERSIONED_FIELDS}


class PostmortemRevision(models.Model):
    """The content as of one version: lets a conflicting save be merged and nothing be lost."""

    postmortem = models.ForeignKey(Postmortem, on_delete=models.CASCADE, related_name="revisions")
    version = models.PositiveIntegerField()
    content = models.JSONField()
    saved_at = models.DateTimeField(default=timezone.now)
    saved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    autosave = models.BooleanField(default=False)
    # The editing session (one open form) that saved it: a session's own autosaves never
    # count as someone else's concurrent edit.
    editor = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["postmortem", "version"], name="one_revision_per_version"
            )
        ]

    def __str__(self) -> str:
        return f"Postmortem {self.postmortem_id} v{self.version}"


class ActionCategory(models.TextChoices):
    # Playbook: Implement Preventive Measures, plus Update Playbook.
    MONITORING = "monitoring", "Monitoring"
    PERFORMANCE = "performance", "Performance"
    DATA_INTEGRITY = "data_integrity", "Data integrity checks"
    BACKUP_RECOVERY = "backup_recovery", "Backup and recovery"
    SCALING = "scaling", "Scaling"
    PLAYBOOK = "playbook", "Playbook"


class ActionStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Done"
    WONT_DO = "wont_do", "Won't do"


CLOSED_ACTION_STATUSES = (ActionStatus.DONE, ActionStatus.WONT_DO)


class ActionItem(models.Model):
    """A preventive measure coming out of a postmortem."""

    postmortem = models.ForeignKey(
        Postmortem, on_delete=models.PROTECT, related_name="action_items"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    category = models.CharField(max_length=20, choices=ActionCategory.choices)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="postmortem_action_items",
    )
    due_date = models.DateField(null=True, blank=True)
    status = models.CharField(
        max_length=20, choices=ActionStatus.choices, default=ActionStatus.OPEN, db_index=True
    )
    tracker_url = models.URLField(blank=True, max_length=500)

    # Verification gate: the item is done only once this diagnostic check passes on the target.
    check_target = models.ForeignKey(
        "diagnostics.TargetDatabase",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="postmortem_action_items",
    )
    check_key = models.CharField(max_length=100, blank=True)
    # The run started by the last attempt to close the item, and what it found.
    verification_run = models.ForeignKey(
        "diagnostics.DiagnosticRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    # The same for an item gated on a data integrity check (check_key "integrity:<id>").
    verification_integrity_run = models.ForeignKey(
        "integrity.IntegrityRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    verification_status = models.CharField(max_length=20, blank=True)
    verification_summary = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # How long the check must keep passing before the item closes (minutes); None: the default
    # for its check (settings.QUELL_ACTION_ITEM_HOLD_MINUTES, one pass for a definition).
    hold_minutes = models.PositiveIntegerField(null=True, blank=True)
    # When the current series of consecutive passes began (None: the check has not passed,
    # or failed since).
    passing_since = models.DateTimeField(null=True, blank=True)
    # Who asked for it to be closed while the verification runs.
    completion_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The day the last overdue reminder went out (one a day at most).
    reminded_on = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["due_date", "id"]
        indexes = [models.Index(fields=["status", "due_date"], name="actionitem_status_due")]
        constraints = [
            models.CheckConstraint(
                condition=Q(category__in=ActionCategory.values), name="actionitem_category_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=ActionStatus.values), name="actionitem_status_valid"
            ),
            # A check gate names both the target and the check.
            models.CheckConstraint(
                condition=Q(check_target__isnull=True, check_key="")
                | (Q(check_target__isnull=False) & ~Q(check_key="")),
                name="actionitem_check_gate_complete",
            ),
            # A gated item is done only with a passing verification on record.
            models.CheckConstraint(
                condition=~Q(status="done")
                | Q(check_target__isnull=True)
                | Q(verification_status="ok"),
                name="actionitem_gated_done_needs_passing_check",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_closed(self) -> bool:
        return self.status in CLOSED_ACTION_STATUSES

    @property
    def has_check_gate(self) -> bool:
        return bool(self.check_target_id and self.check_key)

    @property
    def is_verifying(self) -> bool:
        return self.verification_status == "running"

    @property
    def is_holding(self) -> bool:
        """Passed, but not yet over its whole window: checked again when the window is up."""
        return self.verification_status == "holding" and not self.is_closed

    def is_overdue(self, today=None) -> bool:
        today = today or timezone.localdate()
        return bool(self.due_date and not self.is_closed and self.due_date < today)


class ReviewStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    HELD = "held", "Held"
    CANCELLED = "cancelled", "Cancelled"


def _new_uid() -> str:
    return f"{uuid.uuid4()}@quell"


class Review(models.Model):
    """A post-incident review meeting and its calendar invite.

    `uid` never changes for the life of the meeting, `sequence` increases with each update, so
    calendar clients replace the event instead of adding a second one.
    """

    postmortem = models.ForeignKey(Postmortem, on_delete=models.PROTECT, related_name="reviews")
    status = models.CharField(
        max_length=20, choices=ReviewStatus.choices, default=ReviewStatus.SCHEDULED
    )
    starts_at = models.DateTimeField()
    duration_minutes = models.PositiveIntegerField(default=60)
    location = models.CharField(max_length=500, blank=True)
    agenda = models.TextField(blank=True)
    # [{"email": ..., "name": ..., "reason": "response team" | "database specialist" | ...}]
    attendees = models.JSONField(default=list, blank=True)
    # People the playbook says to invite who could not be: [{"name", "reason", "why"}], e.g. a
    # responder without an e-mail address. Shown on the postmortem page so nobody is skipped
    # without a word.
    left_out = models.JSONField(default=list, blank=True)
    uid = models.CharField(max_length=200, unique=True, default=_new_uid)
    sequence = models.PositiveIntegerField(default=0)
    organizer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
    cancelled_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=ReviewStatus.values), name="review_status_valid"
            ),
            # One live meeting per postmortem; cancelled ones stay as history.
            models.UniqueConstraint(
                fields=["postmortem"],
                condition=Q(status="scheduled"),
                name="one_scheduled_review_per_postmortem",
            ),
            models.CheckConstraint(
                condition=Q(duration_minutes__gte=5) & Q(duration_minutes__lte=480),
                name="review_duration_range",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of postmortem {self.postmortem_id} at {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def ends_at(self):
        return self.starts_at + datetime.timedelta(minutes=self.duration_minutes)
