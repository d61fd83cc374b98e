"""Reads: tree versions, an incident's walk and where it stands, and answer suggestions."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.db.models import Prefetch, QuerySet
from django.utils.module_loading import import_string

from . import actions
from .models import (
    TreeStatus,
    TriageAnswer,
    TriageNode,
    TriageStep,
    TriageTree,
    TriageWalk,
    WalkStatus,
)

logger = logging.getLogger(__name__)


def _tree_queryset() -> QuerySet[TriageTree]:
    return TriageTree.objects.prefetch_related(
        Prefetch(
            "nodes",
            queryset=TriageNode.objects.prefetch_related(
                Prefetch(
                    "answers",
                    queryset=TriageAnswer.objects.select_related("to_node").order_by(
                        "position", "id"
                    ),
                ),
                "next_steps",
            ).order_by("position", "id"),
        )
    )


def tree_current() -> TriageTree | None:
    """The published tree version (nodes, answers and next steps loaded), or None."""
    return _tree_queryset().filter(status=TreeStatus.PUBLISHED).first()


def tree_get(*, version: int) -> TriageTree:
    """One tree version with its nodes, answers and next steps."""
    return _tree_queryset().get(version=version)


def tree_root(tree: TriageTree) -> TriageNode | None:
    """The node no answer leads to."""
    nodes = list(tree.nodes.all())
    targets = {a.to_node_id for n in nodes for a in n.answers.all()}
    return next((n for n in nodes if n.pk not in targets), None)


def _walk_queryset() -> QuerySet[TriageWalk]:
    return TriageWalk.objects.select_related(
        "tree",
        "current_node",
        "outcome_node",
        "started_by",
        "ended_by",
        "severity_applied_by",
        "kind_applied_by",
    ).prefetch_related(
        Prefetch(
            "steps",
            queryset=TriageStep.objects.select_related("answered_by", "withdrawn_by").order_by(
                "position", "id"
            ),
        )
    )


def walk_current(*, incident_id: int) -> TriageWalk | None:
    """The incident's walk in use (in progress or with its outcome), or None."""
    return (
        _walk_queryset()
        .filter(incident_id=incident_id)
        .exclude(status=WalkStatus.ABANDONED)
        .first()
    )


def walk_history(*, incident_id: int) -> QuerySet[TriageWalk]:
    """Every walk on the incident, newest first (abandoned ones too)."""
    return _walk_queryset().filter(incident_id=incident_id).order_by("-started_at", "-id")


def path_proposal(path: list[dict]) -> tuple[str, str]:
    """(severity, kind) proposed along a path: the last node on it that sets each."""
    severity = kind = ""
    for node in path:
        severity = node.get("severity") or severity
        kind = node.get("kind") or kind
    return severity, kind


def node_snapshot(node: TriageNode) -> dict:
    """What a step records of a node it passed."""
    return {
        "key": node.key,
        "chart_ref": node.chart_ref,
        "kind": node.kind,
        "text": node.text,
        "severity": node.severity,
        "kind_proposed": node.incident_kind,
    }


def node_out(node: TriageNode, *, incident_id: int | None) -> dict:
    """A node as pages and the API show it (next steps' actions resolved for the incident)."""
    return {
        "id": node.pk,
        "key": node.key,
        "chart_ref": node.chart_ref,
        "kind": node.kind,
        "text": node.text,
        "help": node.help,
        "severity": node.severity,
        "incident_kind": node.incident_kind,
        "answers": [
            {"key": a.key, "label": a.label or a.key, "to": a.to_node.key}
            for a in node.answers.all()
        ],
        "next_steps": [
            {"text": s.text, **actions.resolve(s.action, incident_id=incident_id)}
            for s in node.next_steps.all()
        ],
    }


def _load_node(node_id: int | None) -> TriageNode | None:
    if node_id is None:
        return None
    return (
        TriageNode.objects.prefetch_related(
            Prefetch(
                "answers",
                queryset=TriageAnswer.objects.select_related("to_node").order_by("position", "id"),
            ),
            "next_steps",
        )
        .filter(pk=node_id)
        .first()
    )


def walk_state(walk: TriageWalk, *, suggestions: dict | None = None) -> dict[str, Any]:
    """Where a walk stands: the question to answer (with its suggestion), the path so far, and
    the outcome with its proposed severity, kind and next steps."""
    steps = [s for s in walk.steps.all() if s.withdrawn_at is None]
    start_path = list(walk.start_path or [])
    path = list(start_path)
    for s in steps:
        path.extend(s.path)
    severity, kind = path_proposal(
        [{"severity": p.get("severity"), "kind": p.get("kind_proposed")} for p in path]
    )
    current = _load_node(walk.current_node_id)
    question = None
    suggestion = None
    if current is not None and walk.status == WalkStatus.IN_PROGRESS:
        question = node_out(current, incident_id=walk.incident_id)
        suggestion = normalise_suggestion(question, (suggestions or {}).get(current.key))
        if suggestion:
            suggestion = with_severity_check(
                suggestion, current, declared=walk.incident.severity if walk.incident_id else ""
            )
    outcome = None
    if walk.status == WalkStatus.COMPLETED and walk.outcome_node_id:
        outcome = node_out(_load_node(walk.outcome_node_id), incident_id=walk.incident_id)
        outcome["text"] = walk.outcome_text or outcome["text"]
    return {
        "walk": walk,
        "question": question,
        "suggestion": suggestion,
        "start_path": start_path,
        "steps": steps,
        "outcome": outcome,
        "proposed_severity": walk.proposed_severity if outcome else severity,
        "proposed_kind": walk.proposed_kind if outcome else kind,
        "can_back": bool(steps) and walk.status != WalkStatus.ABANDONED,
    }


def suggestions_for(*, incident_id: int) -> dict[str, dict]:
    """Answers proposed by the providers in settings.QUELL_TRIAGE_ANSWER_PROVIDERS.

    {question key: {"answer", "evidence", "run_url", "provider"}}; the first provider to answer
    a question wins. A provider that fails is logged and skipped: triage must keep working when
    diagnostics cannot help.
    """
    merged: dict[str, dict] = {}
    for path in settings.QUELL_TRIAGE_ANSWER_PROVIDERS:
        try:
            provider = import_string(path)
            found = provider(incident_id) or {}
        except Exception:  # any provider failure: no suggestions from it, never a broken page
            logger.exception("Triage answer provider %s failed", path)
            continue
        if not isinstance(found, dict):
            logger.warning("Triage answer provider %s returned %r, not a dict", path, found)
            continue
        for key, value in found.items():
            if key in merged or not isinstance(value, dict) or not value.get("answer"):
                continue
            merged[key] = {
                "answer": str(value["answer"]),
                "evidence": str(value.get("evidence") or ""),
                "run_url": str(value.get("run_url") or ""),
                "provider": path,
            }
    return merged


def severity_ahead(node: TriageNode, answer_key: str) -> tuple[str, str]:
    """(severity, step text) the answer leads to: the first node after it that sets a severity,
    following only unlabelled steps (a question further on leaves it open); ("", "") if none."""
    edge = next((a for a in node.answers.all() if a.key == answer_key), None)
    seen = set()
    current = edge.to_node if edge else None
    while current is not None and current.pk not in seen:
        seen.add(current.pk)
        if current.severity:
            return current.severity, current.text
        if current.kind != "step":
            return "", ""
        nxt = current.answers.select_related("to_node").first()
        current = nxt.to_node if nxt else None
    return "", ""


def with_severity_check(suggestion: dict, node: TriageNode, *, declared: str) -> dict:
    """The suggestion, saying so when the severity it leads to differs from the declared one.

    A suggestion must never quietly contradict what the responders declared: the page shows
    `severity_note` next to it ("the incident is declared SEV1; this answer leads to SEV3").
    """
    leads_to, step = severity_ahead(node, suggestion["answer"])
    note = ""
    if leads_to and declared and leads_to != declared:
        lower = "lower" if leads_to > declared else "higher"
        note = (
            f"The incident is declared {declared}; this answer leads to {leads_to} ({step}), "
            f"a {lower} severity. Keep {declared} if the impact you see is wider than the "
            "diagnostics show."
            if lower == "lower"
            else f"The incident is declared {declared}; this answer leads to {leads_to} "
            f"({step}), a higher severity: consider raising it."
        )
    return {**suggestion, "leads_to_severity": leads_to, "severity_note": note}


def normalise_suggestion(node: TriageNode | dict, suggestion: dict | None) -> dict | None:
    """The suggestion with its answer matched to one of the node's answer keys (providers may
    name the label, "No", instead of the key), or None when it matches none."""
    if not suggestion:
        return None
    answers = (
        node["answers"]
        if isinstance(node, dict)
        else [{"key": a.key, "label": a.label or a.key} for a in node.answers.all()]
    )
    wanted = suggestion["answer"].strip().lower()
    for a in answers:
        if wanted in (a["key"].lower(), a["label"].lower()):
            return {**suggestion, "answer": a["key"], "answer_label": a["label"]}
    return None
