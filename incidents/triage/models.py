"""Triage trees (versioned), their nodes and answers, and the walks responders make.

Imported by incidents.models, so the app label is "incidents" and migrations live there.
Writes go through incidents.triage.services.

A tree version is edited while it is a draft and frozen once published: walks point at the
nodes of the version they walked, and every step also keeps a copy of the texts it showed, so
an edit in the admin (which makes a new version) never changes a walk already recorded.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

# incidents.models imports this module at its end, after Kind is defined.
from ..models import Kind
from ..severity import Severity


class TreeStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PUBLISHED = "published", "Published"
    RETIRED = "retired", "Retired"


class NodeKind(models.TextChoices):
    QUESTION = "question", "Question"
    # A statement on the way with a single way on: the start, or a classification such as
    # "SEV1: Connection Issue" that proposes a severity before the walk continues.
    STEP = "step", "Step"
    OUTCOME = "outcome", "Outcome"


class TriageAction(models.TextChoices):
    """Quell actions a next step can point to (see incidents.triage.actions)."""

    NONE = "", "No link"
    RUN_DIAGNOSTICS = "run_diagnostics", "Run diagnostics"
    CHECK_MIGRATIONS = "check_migrations", "Check recent migrations"
    BLOCKING_QUERIES = "blocking_queries", "Blocking queries"
    SLOW_QUERIES = "slow_queries", "Slow queries"
    LONG_RUNNING_QUERIES = "long_running_queries", "Long-running queries"
    CONNECTIONS = "connections", "Connections"
    REMEDIATION = "remediation", "Cancel or terminate queries"
    INTEGRITY_VERIFICATION = "integrity_verification", "Integrity verification"
    PITR_RUNBOOK = "pitr_runbook", "Point-in-time recovery runbook"
    SCHEMA_ROLLBACK_RUNBOOK = "schema_rollback_runbook", "Schema rollback runbook"
    MITIGATION_RUNBOOK = "mitigation_runbook", "Quick mitigation runbook"


class TriageTree(models.Model):
    """One version of the decision tree."""

    version = models.PositiveIntegerField(unique=True)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=10, choices=TreeStatus.choices, default=TreeStatus.DRAFT)
    notes = models.TextField(blank=True, help_text="What changed in this version, and why.")
    based_on = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="published"), name="triage_one_published"
            ),
            models.CheckConstraint(
                condition=Q(status__in=TreeStatus.values), name="triage_tree_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"v{self.version} {self.title} ({self.status})"

    @property
    def is_editable(self) -> bool:
        return self.status == TreeStatus.DRAFT


class TriageNode(models.Model):
    tree = models.ForeignKey(TriageTree, on_delete=models.CASCADE, related_name="nodes")
    # Stable across versions: answer providers address questions by key ("can_connect").
    key = models.SlugField(max_length=60)
    # The node's letter in the playbook's chart ("B"), for reference.
    chart_ref = models.CharField(max_length=10, blank=True)
    kind = models.CharField(max_length=10, choices=NodeKind.choices)
    text = models.CharField(max_length=300, help_text="The question, step or outcome as shown.")
    help = models.TextField(blank=True, help_text="Guidance shown with it (the decision point).")
    severity = models.CharField(
        max_length=4,
        choices=Severity.choices,
        blank=True,
        help_text="Severity proposed from here on (empty: keep what the path proposed).",
    )
    incident_kind = models.CharField(
        max_length=20,
        choices=Kind.choices,
        blank=True,
        help_text="Incident kind proposed from here on (empty: keep what the path proposed).",
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["tree_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tree", "key"], name="triage_node_key_once"),
            models.CheckConstraint(
                condition=Q(kind__in=NodeKind.values), name="triage_node_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(severity="") | Q(severity__in=Severity.values),
                name="triage_node_severity_valid",
            ),
        ]

    def __str__(self) -> str:
        ref = f"{self.chart_ref}: " if self.chart_ref else ""
        return f"{ref}{self.text}"


class TriageAnswer(models.Model):
    """An edge: from a question (labelled answer) or a step (unlabelled: the way on)."""

    tree = models.ForeignKey(TriageTree, on_delete=models.CASCADE, related_name="answers")
    from_node = models.ForeignKey(TriageNode, on_delete=models.CASCADE, related_name="answers")
    to_node = models.ForeignKey(TriageNode, on_delete=models.CASCADE, related_name="incoming")
    key = models.SlugField(max_length=60, help_text='"yes", "no", "very_slow", ...')
    label = models.CharField(max_length=120, blank=True)
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["from_node_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["from_node", "key"], name="triage_answer_key_once"),
            models.CheckConstraint(
                condition=~Q(from_node=models.F("to_node")), name="triage_answer_not_self"
            ),
        ]

    def __str__(self) -> str:
        source = self.from_node.chart_ref or self.from_node.key
        target = self.to_node.chart_ref or self.to_node.key
        return f"{source} --{self.label or self.key}--> {target}"


class TriageNextStep(models.Model):
    """Something to do once a node is reached, optionally linked to a Quell action."""

    node = models.ForeignKey(TriageNode, on_delete=models.CASCADE, related_name="next_steps")
    text = models.CharField(max_length=300)
    action = models.CharField(
        max_length=40, choices=TriageAction.choices, blank=True, default=TriageAction.NONE
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["node_id", "position", "id"]

    def __str__(self) -> str:
        return self.text


class WalkStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Outcome reached"
    ABANDONED = "abandoned", "Abandoned (restarted)"


class TriageWalk(models.Model):
    """One responder team's pass through a tree version on an incident."""

    incident = models.ForeignKey(
        "incidents.Incident", on_delete=models.PROTECT, related_name="triage_walks"
    )
    tree = models.ForeignKey(TriageTree, on_delete=models.PROTECT, related_name="walks")
    status = models.CharField(
        max_length=12, choices=WalkStatus.choices, default=WalkStatus.IN_PROGRESS
    )
    current_node = models.ForeignKey(
        TriageNode, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    # Nodes passed from the root to the first question (snapshots, like TriageStep.path).
    start_path = models.JSONField(default=list, blank=True)
    started_at = models.DateTimeField()
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    completed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # The outcome as proposed when it was reached (copies: the tree may be retired later).
    outcome_node = models.ForeignKey(
        TriageNode, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    outcome_text = models.CharField(max_length=300, blank=True)
    proposed_severity = models.CharField(max_length=4, choices=Severity.choices, blank=True)
    proposed_kind = models.CharField(max_length=20, choices=Kind.choices, blank=True)
    severity_applied_at = models.DateTimeField(null=True, blank=True)
    severity_applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind_applied_at = models.DateTimeField(null=True, blank=True)
    kind_applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            # One walk in use per incident; restarting abandons the old one (kept as history).
            models.UniqueConstraint(
                fields=["incident"],
                condition=~Q(status="abandoned"),
                name="triage_one_walk_in_use",
            ),
            models.CheckConstraint(
                condition=Q(status__in=WalkStatus.values), name="triage_walk_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"triage walk #{self.pk} on incident #{self.incident_id} ({self.status})"


class SuggestionOutcome(models.TextChoices):
    NONE = "", "No suggestion"
    ACCEPTED = "accepted", "Suggestion accepted"
    OVERRIDDEN = "overridden", "Suggestion overridden"


class TriageStep(models.Model):
    """One answer given in a walk. Going back withdraws it (kept, with who and when)."""

    walk = models.ForeignKey(TriageWalk, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField()
    node = models.ForeignKey(TriageNode, on_delete=models.PROTECT, related_name="+")
    answer = models.ForeignKey(TriageAnswer, on_delete=models.PROTECT, related_name="+")
    # Copies of what was shown, so the record reads the same whatever happens to the tree.
    question_key = models.CharField(max_length=60)
    question_text = models.CharField(max_length=300)
    answer_key = models.CharField(max_length=60)
    answer_label = models.CharField(max_length=120)
    # Steps passed on the way to the next question or outcome: [{key, chart_ref, text,
    # severity, kind}]; the last element is where the answer led.
    path = models.JSONField(default=list, blank=True)
    answered_at = models.DateTimeField()
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    suggested_answer_key = models.CharField(max_length=60, blank=True)
    suggestion_evidence = models.TextField(blank=True)
    suggestion_run_url = models.CharField(max_length=500, blank=True)
    suggestion = models.CharField(
        max_length=10, choices=SuggestionOutcome.choices, blank=True, default=""
    )
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["walk_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["walk", "position"],
                condition=Q(withdrawn_at__isnull=True),
                name="triage_step_position_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.question_text} -> {self.answer_label}"

    @property
    def is_withdrawn(self) -> bool:
        return self.withdrawn_at is not None


# Choice lists without the blank "none" value, for API fields that say null instead.
ACTION_CHOICES = [c for c in TriageAction.choices if c[0]]
SUGGESTION_CHOICES = [c for c in SuggestionOutcome.choices if c[0]]
