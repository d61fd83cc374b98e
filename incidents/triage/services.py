"""Writes: seed and version the tree, walk it on an incident, apply its outcome.

Walk services lock the incident row first and then the walk (the same order everywhere, and the
order incidents.services uses), record their timeline event (EventKind.TRIAGE) in the same
transaction, and refuse closed incidents. Errors are incidents.services' IncidentError (400)
and IncidentConflict (409), so the API and pages answer them like every other incident action.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from config.kernel.actors import user_or_none

from .. import services as incident_services
from ..models import EventKind, Incident, Kind, Status
from ..services import IncidentConflict, IncidentError
from . import playbook, selectors
from .models import (
    NodeKind,
    SuggestionOutcome,
    TreeStatus,
    TriageAnswer,
    TriageNextStep,
    TriageNode,
    TriageTree,
    TriageWalk,
    WalkStatus,
)
from .validation import validate_tree

# A step always has exactly one way on when published; this bounds a walk through a broken draft.
_MAX_STEPS_IN_A_ROW = 100


def _event(incident_id: int, message: str, *, actor, data: dict) -> None:
    incident_services.timeline_append(
        incident_id=incident_id, kind=EventKind.TRIAGE, message=message, actor=actor, data=data
    )


# --- Tree versions ------------------------------------------------------------------------


def _next_version() -> int:
    return (TriageTree.objects.aggregate(v=Max("version"))["v"] or 0) + 1


@transaction.atomic
def tree_seed_playbook(*, actor=None) -> TriageTree:
    """Publish the playbook's tree when no version is published (a no-op otherwise)."""
    # Serialise concurrent first uses: the second waits, then finds the first one's tree.
    TriageTree.objects.select_for_update().filter(status=TreeStatus.PUBLISHED).exists()
    current = TriageTree.objects.filter(status=TreeStatus.PUBLISHED).first()
    if current is not None:
        return current
    try:
        with transaction.atomic():
            tree = playbook.build_tree(
                Tree=TriageTree,
                Node=TriageNode,
                Answer=TriageAnswer,
                NextStep=TriageNextStep,
                version=_next_version(),
                status=TreeStatus.PUBLISHED,
                notes="The playbook's decision tree as shipped.",
            )
    except IntegrityError:
        # Somebody else published at the same moment: use theirs.
        return TriageTree.objects.get(status=TreeStatus.PUBLISHED)
    if user_or_none(actor):
        TriageTree.objects.filter(pk=tree.pk).update(created_by=actor, published_by=actor)
    return tree


def tree_ensure_current() -> TriageTree:
    """The published tree, seeding the playbook's on first use; loaded for reading."""
    tree = selectors.tree_current()
    if tree is None:
        tree_seed_playbook()
        tree = selectors.tree_current()
    return tree


@transaction.atomic
def tree_draft_from(*, tree_id: int, actor=None, title: str = "") -> TriageTree:
    """A new draft version copying `tree_id` (nodes, answers, next steps) to edit."""
    source = TriageTree.objects.get(pk=tree_id)
    # Lock the table's versions against a concurrent draft taking the same number.
    TriageTree.objects.select_for_update().order_by("-version").first()
    draft = TriageTree.objects.create(
        version=_next_version(),
        title=title or source.title,
        status=TreeStatus.DRAFT,
        based_on=source,
        created_by=user_or_none(actor),
        notes="",
    )
    mapping: dict[int, TriageNode] = {}
    for node in source.nodes.prefetch_related("next_steps").order_by("position", "id"):
        copy = TriageNode.objects.create(
            tree=draft,
            key=node.key,
            chart_ref=node.chart_ref,
            kind=node.kind,
            text=node.text,
            help=node.help,
            severity=node.severity,
            incident_kind=node.incident_kind,
            position=node.position,
        )
        mapping[node.pk] = copy
        TriageNextStep.objects.bulk_create(
            TriageNextStep(node=copy, text=s.text, action=s.action, position=s.position)
            for s in node.next_steps.all()
        )
    TriageAnswer.objects.bulk_create(
        TriageAnswer(
            tree=draft,
            from_node=mapping[a.from_node_id],
            to_node=mapping[a.to_node_id],
            key=a.key,
            label=a.label,
            position=a.position,
        )
        for a in source.answers.all()
    )
    return draft


@transaction.atomic
def tree_publish(*, tree_id: int, actor=None) -> TriageTree:
    """Make a valid draft the current tree; the one it replaces is retired (walks keep it)."""
    tree = TriageTree.objects.select_for_update().get(pk=tree_id)
    if tree.status != TreeStatus.DRAFT:
        raise IncidentError(f"Version {tree.version} is {tree.status}; only drafts publish.")
    problems = validate_tree(tree)
    if problems:
        raise IncidentError(
            "This version cannot be published: " + " ".join(p.message for p in problems),
            field="tree",
        )
    TriageTree.objects.filter(status=TreeStatus.PUBLISHED).update(status=TreeStatus.RETIRED)
    tree.status = TreeStatus.PUBLISHED
    tree.published_at = timezone.now()
    tree.published_by = user_or_none(actor)
    tree.save(update_fields=["status", "published_at", "published_by"])
    return tree


# --- Walks ------------------------------------------------------------------------------


def _lock_incident(incident_id: int) -> Incident:
    try:
        incident = Incident.objects.select_for_update().get(pk=incident_id)
    except Incident.DoesNotExist:
        raise IncidentError(f"Incident {incident_id} does not exist.", field="incident") from None
    if incident.status == Status.CLOSED:
        raise IncidentError("A closed incident cannot be triaged.")
    return incident


def _lock_walk(incident_id: int) -> TriageWalk:
    walk = (
        TriageWalk.objects.select_for_update(of=("self",))
        .select_related("tree", "current_node")
        .filter(incident_id=incident_id)
        .exclude(status=WalkStatus.ABANDONED)
        .first()
    )
    if walk is None:
        raise IncidentError("Triage has not started on this incident.", field="walk")
    return walk


def _advance(node: TriageNode) -> tuple[list[dict], TriageNode]:
    """Follow steps (single way on) from `node` to the next question or outcome.

    Returns the snapshots of the nodes passed, the stopping node included, and that node.
    """
    path = []
    for _ in range(_MAX_STEPS_IN_A_ROW):
        path.append(selectors.node_snapshot(node))
        if node.kind != NodeKind.STEP:
            return path, node
        nxt = node.answers.select_related("to_node").order_by("position", "id").first()
        if nxt is None:
            raise IncidentError(f"Step '{node.text}' leads nowhere; fix the tree.")
        node = nxt.to_node
    raise IncidentError("The tree loops through steps; fix the tree.")


def _complete(walk: TriageWalk, node: TriageNode, *, now, full_path: list[dict]) -> None:
    severity, kind = selectors.path_proposal(
        [{"severity": p.get("severity"), "kind": p.get("kind_proposed")} for p in full_path]
    )
    walk.status = WalkStatus.COMPLETED
    walk.completed_at = now
    walk.outcome_node = node
    walk.outcome_text = node.text
    walk.proposed_severity = severity
    walk.proposed_kind = kind


def _full_path(walk: TriageWalk) -> list[dict]:
    path = list(walk.start_path or [])
    for s in walk.steps.filter(withdrawn_at__isnull=True).order_by("position"):
        path.extend(s.path)
    return path


def _outcome_message(walk: TriageWalk) -> str:
    via = [
        p["text"]
        for p in _full_path(walk)[:-1]
        if p.get("kind") == NodeKind.STEP and (p.get("severity") or p.get("kind_proposed"))
    ]
    message = f"Triage outcome: {walk.outcome_text}"
    if via:
        message += f" (via {'; '.join(via)})"
    proposals = []
    if walk.proposed_severity:
        proposals.append(walk.proposed_severity)
    if walk.proposed_kind:
        proposals.append(Kind(walk.proposed_kind).label.lower())
    message += f". Proposes {', '.join(proposals)}." if proposals else ". No severity proposed."
    steps = [s.text for s in walk.outcome_node.next_steps.all()]
    if steps:
        message += " Next: " + "; ".join(steps) + "."
    return message


@transaction.atomic
def triage_walk_start(*, incident_id: int, actor=None, restart: bool = False) -> TriageWalk:
    """Start triage on the current tree (the walk in use is returned unless `restart`)."""
    tree = tree_ensure_current()
    _lock_incident(incident_id)
    existing = (
        TriageWalk.objects.select_for_update()
        .filter(incident_id=incident_id)
        .exclude(status=WalkStatus.ABANDONED)
        .first()
    )
    now = timezone.now()
    if existing is not None:
        if not restart:
            return existing
        answered = existing.steps.filter(withdrawn_at__isnull=True).count()
        existing.status = WalkStatus.ABANDONED
        existing.ended_at = now
        existing.ended_by = user_or_none(actor)
        existing.save(update_fields=["status", "ended_at", "ended_by"])
    root = selectors.tree_root(tree)
    if root is None:
        raise IncidentError("The published triage tree has no root; fix it in the admin.")
    path, stop = _advance(root)
    walk = TriageWalk.objects.create(
        incident_id=incident_id,
        tree=tree,
        current_node=stop,
        start_path=path,
        started_at=now,
        started_by=user_or_none(actor),
    )
    if existing is not None:
        _event(
            incident_id,
            f"Triage restarted on tree v{tree.version}; the previous walk "
            f"({answered} answer{'s' if answered != 1 else ''}) was abandoned.",
            actor=actor,
            data={
                "action": "restarted",
                "walk": walk.pk,
                "abandoned_walk": existing.pk,
                "tree_version": tree.version,
            },
        )
    if stop.kind == NodeKind.OUTCOME:  # a tree that is only an outcome: nothing to ask
        _complete(walk, stop, now=now, full_path=path)
        walk.save()
        _event(incident_id, _outcome_message(walk), actor=actor, data=_outcome_data(walk))
    return walk


def _outcome_data(walk: TriageWalk) -> dict:
    return {
        "action": "outcome",
        "walk": walk.pk,
        "tree_version": walk.tree.version,
        "outcome": walk.outcome_node.key,
        "outcome_text": walk.outcome_text,
        "proposed_severity": walk.proposed_severity,
        "proposed_kind": walk.proposed_kind,
        "path": [
            {"question": s.question_key, "answer": s.answer_key}
            for s in walk.steps.filter(withdrawn_at__isnull=True).order_by("position")
        ],
    }


@transaction.atomic
def triage_walk_answer(
    *, incident_id: int, question: str, answer: str, actor=None, suggestion: dict | None = None
) -> TriageWalk:
    """Answer the walk's current question; steps on the way are passed and an outcome ends it.

    `question` is the key of the question the responder saw: if the walk has moved on since
    (somebody else answered), the answer is refused as a conflict rather than applied to a
    different question. `suggestion` is what the answer providers proposed for it, if anything.
    """
    _lock_incident(incident_id)
    walk = _lock_walk(incident_id)
    node = walk.current_node
    if walk.status != WalkStatus.IN_PROGRESS or node is None:
        raise IncidentConflict(
            "This triage already reached its outcome; go back or restart to change an answer."
        )
    if node.key != question:
        raise IncidentConflict(
            f"The triage has moved on: the current question is '{node.text}', not the one "
            "answered. Reload and answer again."
        )
    edge = node.answers.select_related("to_node").filter(key=answer).first()
    if edge is None:
        choices = ", ".join(node.answers.values_list("key", flat=True))
        raise IncidentError(
            f"'{answer}' is not an answer to '{node.text}'. Choose one of: {choices}.",
            field="answer",
        )
    now = timezone.now()
    path, stop = _advance(edge.to_node)
    # Providers may name an answer by its label ("No"): record the key it stands for.
    suggestion = selectors.normalise_suggestion(node, suggestion)
    suggested = (suggestion or {}).get("answer", "")
    position = walk.steps.filter(withdrawn_at__isnull=True).count()
    step = walk.steps.create(
        position=position,
        node=node,
        answer=edge,
        question_key=node.key,
        question_text=node.text,
        answer_key=edge.key,
        answer_label=edge.label or edge.key,
        path=path,
        answered_at=now,
        answered_by=user_or_none(actor),
        suggested_answer_key=suggested,
        suggestion_evidence=(suggestion or {}).get("evidence", "")[:4000],
        suggestion_run_url=(suggestion or {}).get("run_url", "")[:500],
        suggestion=(
            SuggestionOutcome.NONE
            if not suggested
            else SuggestionOutcome.ACCEPTED
            if suggested == edge.key
            else SuggestionOutcome.OVERRIDDEN
        ),
    )
    walk.current_node = stop
    fields = ["current_node"]
    if stop.kind == NodeKind.OUTCOME:
        _complete(walk, stop, now=now, full_path=_full_path(walk))
        fields += [
            "status",
            "completed_at",
            "outcome_node",
            "outcome_text",
            "proposed_severity",
            "proposed_kind",
        ]
    walk.save(update_fields=fields)
    message = f"Triage: {step.question_text} {step.answer_label}"
    if step.suggestion == SuggestionOutcome.ACCEPTED:
        message += " (as diagnostics suggested)"
    elif step.suggestion == SuggestionOutcome.OVERRIDDEN:
        message += f" (diagnostics suggested '{suggested}': overridden)"
    passed = [p["text"] for p in path[:-1]]
    if passed:
        message += f" → {'; '.join(passed)}"
    _event(
        incident_id,
        message,
        actor=actor,
        data={
            "action": "answered",
            "walk": walk.pk,
            "tree_version": walk.tree.version,
            "question": step.question_key,
            "answer": step.answer_key,
            "suggested_answer": suggested,
            "suggestion": step.suggestion,
            "evidence": step.suggestion_evidence,
            "run_url": step.suggestion_run_url,
        },
    )
    if walk.status == WalkStatus.COMPLETED:
        _event(incident_id, _outcome_message(walk), actor=actor, data=_outcome_data(walk))
    return walk


@transaction.atomic
def triage_walk_back(*, incident_id: int, actor=None) -> TriageWalk:
    """Withdraw the last answer (kept, marked withdrawn) and return to its question."""
    _lock_incident(incident_id)
    walk = _lock_walk(incident_id)
    last = walk.steps.filter(withdrawn_at__isnull=True).order_by("-position").first()
    if last is None:
        raise IncidentError("There is no answer to go back from.", field="walk")
    now = timezone.now()
    last.withdrawn_at = now
    last.withdrawn_by = user_or_none(actor)
    last.save(update_fields=["withdrawn_at", "withdrawn_by"])
    was_completed = walk.status == WalkStatus.COMPLETED
    walk.status = WalkStatus.IN_PROGRESS
    walk.current_node = last.node
    walk.completed_at = None
    walk.outcome_node = None
    walk.outcome_text = ""
    walk.proposed_severity = ""
    walk.proposed_kind = ""
    # What was applied stays applied (and on the timeline); the new outcome may be applied anew.
    walk.severity_applied_at = walk.kind_applied_at = None
    walk.severity_applied_by = walk.kind_applied_by = None
    walk.save()
    message = (
        f"Triage: went back to '{last.question_text}' (answer '{last.answer_label}' withdrawn)"
    )
    if was_completed:
        message += "; the outcome no longer stands"
    _event(
        incident_id,
        message + ".",
        actor=actor,
        data={
            "action": "back",
            "walk": walk.pk,
            "tree_version": walk.tree.version,
            "question": last.question_key,
            "withdrawn_answer": last.answer_key,
        },
    )
    return walk


@transaction.atomic
def triage_outcome_apply(
    *, incident_id: int, actor=None, severity: bool = True, kind: bool = True
) -> TriageWalk:
    """Apply the outcome's proposed severity and/or kind to the incident.

    Severity goes through incident_change_severity with a reason citing the triage (so it is a
    normal re-grade on the timeline); kind through incident_update. Callers check that the
    actor may change severity (commander or the incident's IC).
    """
    if not severity and not kind:
        raise IncidentError("Choose what to apply: severity, kind or both.", field="apply")
    incident = _lock_incident(incident_id)
    walk = _lock_walk(incident_id)
    if walk.status != WalkStatus.COMPLETED:
        raise IncidentError("The triage has not reached an outcome yet.", field="walk")
    if severity and not walk.proposed_severity:
        raise IncidentError("This outcome proposes no severity.", field="severity")
    if kind and not walk.proposed_kind:
        raise IncidentError("This outcome proposes no incident kind.", field="kind")
    now = timezone.now()
    applied = []
    reason = f"triage (tree v{walk.tree.version}): {walk.outcome_text}"
    fields = []
    if severity:
        before = incident.severity
        incident_services.incident_change_severity(
            incident_id=incident_id, severity=walk.proposed_severity, actor=actor, reason=reason
        )
        applied.append(
            f"severity {before} → {walk.proposed_severity}"
            if before != walk.proposed_severity
            else f"severity already {before}"
        )
        walk.severity_applied_at, walk.severity_applied_by = now, user_or_none(actor)
        fields += ["severity_applied_at", "severity_applied_by"]
    if kind:
        before = incident.kind
        incident_services.incident_update(
            incident_id=incident_id, kind=walk.proposed_kind, actor=actor
        )
        applied.append(
            f"kind {before} → {walk.proposed_kind}"
            if before != walk.proposed_kind
            else f"kind already {before}"
        )
        walk.kind_applied_at, walk.kind_applied_by = now, user_or_none(actor)
        fields += ["kind_applied_at", "kind_applied_by"]
    walk.save(update_fields=fields)
    _event(
        incident_id,
        f"Triage outcome applied ({walk.outcome_text}): {', '.join(applied)}.",
        actor=actor,
        data={
            "action": "applied",
            "walk": walk.pk,
            "tree_version": walk.tree.version,
            "severity": walk.proposed_severity if severity else "",
            "kind": walk.proposed_kind if kind else "",
        },
    )
    return walk
