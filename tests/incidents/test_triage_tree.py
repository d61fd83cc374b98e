"""The triage tree: the playbook's chart seeded exactly, validation, versions, walking it."""

from __future__ import annotations

import pytest

from incidents.models import EventKind, TimelineEvent
from incidents.services import IncidentConflict, IncidentError
from incidents.triage import selectors, services
from incidents.triage.models import (
    NodeKind,
    TreeStatus,
    TriageAnswer,
    TriageNode,
    TriageTree,
    WalkStatus,
)
from incidents.triage.validation import validate_graph, validate_tree

pytestmark = pytest.mark.django_db

# Written out from the playbook's mermaid chart (not from the seed data): every path from the
# root to an outcome, as node letters and answer labels, with the severity each proposes.
PLAYBOOK_PATHS = {
    ("A", "B", "No", "C", "E", "Yes", "F"): "SEV1",
    ("A", "B", "No", "C", "E", "No", "G", "Yes", "H"): "SEV1",
    ("A", "B", "No", "C", "E", "No", "G", "No", "I"): "SEV1",
    ("A", "B", "Yes", "D", "Yes", "J", "Very slow/timeout", "L", "N", "Yes", "O"): "SEV2",
    ("A", "B", "Yes", "D", "Yes", "J", "Very slow/timeout", "L", "N", "No", "P"): "SEV2",
    ("A", "B", "Yes", "D", "Yes", "J", "Noticeable but usable", "M", "Q"): "SEV3",
    ("A", "B", "Yes", "D", "No", "K", "Yes", "R", "Widespread", "T", "V"): "SEV2",
    ("A", "B", "Yes", "D", "No", "K", "Yes", "R", "Isolated", "U", "W"): "SEV3",
    ("A", "B", "Yes", "D", "No", "K", "No", "S"): "",
}
PLAYBOOK_TEXT = {
    "A": "Database Issue Detected",
    "B": "Can connect to database?",
    "C": "SEV1: Connection Issue",
    "D": "Performance issue?",
    "E": "Recent schema change?",
    "F": "Check migration logs",
    "G": "Infrastructure issue?",
    "H": "Check database provider status",
    "I": "Check network connectivity",
    "J": "How severe?",
    "K": "Data integrity issue?",
    "L": "SEV2: Major Performance Issue",
    "M": "SEV3: Minor Performance Issue",
    "N": "High load?",
    "O": "Check for resource exhaustion",
    "P": "Check for blocking queries",
    "Q": "Analyze slow queries",
    "R": "How widespread?",
    "S": "Check for application logic issues",
    "T": "SEV2: Major Data Integrity Issue",
    "U": "SEV3: Minor Data Integrity Issue",
    "V": "Consider point-in-time recovery",
    "W": "Targeted data fixes",
}


def _paths(tree):
    """Every root-to-leaf path of a tree as (letters and labels), with the proposed severity."""
    nodes = {n.pk: n for n in tree.nodes.all()}
    root = selectors.tree_root(tree)
    found = {}

    def walk(node, trail, severity):
        trail = (*trail, node.chart_ref)
        severity = node.severity or severity
        answers = list(node.answers.all())
        if not answers:
            assert node.kind == NodeKind.OUTCOME
            found[trail] = severity
        for a in answers:
            label = (a.label,) if node.kind == NodeKind.QUESTION else ()
            walk(nodes[a.to_node_id], (*trail, *label), severity)

    walk(root, (), "")
    return found


def test_seeded_tree_is_the_playbook_chart_path_by_path():
    tree = selectors.tree_current()
    assert tree.version == 1 and tree.status == TreeStatus.PUBLISHED
    assert {n.chart_ref: n.text for n in tree.nodes.all()} == PLAYBOOK_TEXT
    assert _paths(tree) == PLAYBOOK_PATHS
    assert validate_tree(tree) == []


def test_seeded_decision_points_carry_the_playbook_guidance():
    tree = selectors.tree_current()
    help_by_ref = {n.chart_ref: n.help for n in tree.nodes.all()}
    assert help_by_ref["B"] == "If no, treat as SEV1 connection issue. If yes, continue assessment."
    assert "If very slow/timeout, treat as SEV2" in help_by_ref["J"]
    assert "If widespread, treat as SEV2. If isolated, treat as SEV3." in help_by_ref["R"]
    actions = {n.chart_ref: {s.action for s in n.next_steps.all()} for n in tree.nodes.all()}
    assert "check_migrations" in actions["F"]
    assert "blocking_queries" in actions["P"]
    assert "slow_queries" in actions["Q"]
    assert {"pitr_runbook", "integrity_verification"} <= actions["V"]


def test_validation_refuses_a_cycle():
    problems = validate_graph(
        {"a": "step", "b": "question", "c": "outcome"},
        [("a", "next", "b"), ("b", "yes", "c"), ("b", "no", "a")],
    )
    messages = " ".join(p.message for p in problems)
    assert "cycle" in messages


def test_validation_refuses_orphans_questions_without_answers_and_branching_outcomes():
    problems = validate_graph(
        {"a": "question", "b": "outcome", "c": "outcome", "lost": "question"},
        [("a", "yes", "b"), ("b", "x", "c")],
    )
    messages = " ".join(p.message for p in problems)
    assert "exactly one root" in messages and "lost" in messages
    assert "Question 'a' needs at least two answers" in messages
    assert "Outcome 'b' must be a leaf" in messages


def test_draft_copies_the_tree_and_publishing_retires_the_old_version(admin_user):
    v1 = selectors.tree_current()
    draft = services.tree_draft_from(tree_id=v1.pk, actor=admin_user)
    assert draft.status == TreeStatus.DRAFT and draft.version == 2
    assert _paths(selectors.tree_get(version=2)) == PLAYBOOK_PATHS
    node = draft.nodes.get(key="analyze_slow_queries")
    node.text = "Analyze slow queries (pg_stat_statements)"
    node.save()
    services.tree_publish(tree_id=draft.pk, actor=admin_user)
    assert selectors.tree_current().version == 2
    v1.refresh_from_db()
    assert v1.status == TreeStatus.RETIRED
    assert v1.nodes.get(key="analyze_slow_queries").text == "Analyze slow queries"


def test_publish_refuses_an_invalid_draft():
    draft = services.tree_draft_from(tree_id=selectors.tree_current().pk)
    orphan = TriageNode.objects.create(
        tree=draft, key="orphan", kind=NodeKind.OUTCOME, text="Nobody gets here"
    )
    assert orphan.pk
    with pytest.raises(IncidentError, match="exactly one root"):
        services.tree_publish(tree_id=draft.pk)
    assert TriageTree.objects.get(pk=draft.pk).status == TreeStatus.DRAFT


# --- walking ----------------------------------------------------------------------------


def _answer(incident, question, answer, user):
    return services.triage_walk_answer(
        incident_id=incident.pk, question=question, answer=answer, actor=user
    )


def test_walk_to_an_outcome_records_answers_and_proposes_severity(incident, responder):
    walk = services.triage_walk_start(incident_id=incident.pk, actor=responder)
    assert walk.current_node.key == "can_connect"
    assert [p["chart_ref"] for p in walk.start_path] == ["A", "B"]
    _answer(incident, "can_connect", "yes", responder)
    _answer(incident, "performance_issue", "yes", responder)
    walk = _answer(incident, "performance_severity", "very_slow", responder)
    assert walk.current_node.key == "high_load"
    walk = _answer(incident, "high_load", "no", responder)
    assert walk.status == WalkStatus.COMPLETED
    assert walk.outcome_node.chart_ref == "P"
    assert (walk.proposed_severity, walk.proposed_kind) == ("SEV2", "performance")
    steps = list(walk.steps.order_by("position"))
    assert [(s.question_key, s.answer_key) for s in steps] == [
        ("can_connect", "yes"),
        ("performance_issue", "yes"),
        ("performance_severity", "very_slow"),
        ("high_load", "no"),
    ]
    assert all(s.answered_by == responder for s in steps)
    triage_events = TimelineEvent.objects.filter(incident=incident, kind=EventKind.TRIAGE)
    assert triage_events.count() == 5  # four answers and the outcome
    outcome = triage_events.order_by("-id").first()
    assert outcome.data["action"] == "outcome" and outcome.data["proposed_severity"] == "SEV2"
    assert "Check for blocking queries" in outcome.message


def test_back_withdraws_the_last_answer_and_reopens_a_completed_walk(incident, responder):
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    _answer(incident, "can_connect", "yes", responder)
    _answer(incident, "performance_issue", "no", responder)
    walk = _answer(incident, "data_integrity_issue", "no", responder)
    assert walk.status == WalkStatus.COMPLETED and walk.proposed_severity == ""
    walk = services.triage_walk_back(incident_id=incident.pk, actor=responder)
    assert walk.status == WalkStatus.IN_PROGRESS
    assert walk.current_node.key == "data_integrity_issue" and walk.outcome_node is None
    withdrawn = walk.steps.get(question_key="data_integrity_issue")
    assert withdrawn.withdrawn_by == responder
    walk = _answer(incident, "data_integrity_issue", "yes", responder)
    walk = _answer(incident, "integrity_scope", "widespread", responder)
    assert walk.outcome_node.chart_ref == "V"
    assert (walk.proposed_severity, walk.proposed_kind) == ("SEV2", "data_integrity")


def test_back_with_nothing_answered_is_refused(incident, responder):
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    with pytest.raises(IncidentError, match="no answer to go back"):
        services.triage_walk_back(incident_id=incident.pk, actor=responder)


def test_answer_to_a_question_no_longer_current_is_a_conflict(incident, responder):
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    _answer(incident, "can_connect", "no", responder)
    with pytest.raises(IncidentConflict, match="moved on"):
        _answer(incident, "can_connect", "yes", responder)


def test_unknown_answer_is_refused_with_the_choices(incident, responder):
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    with pytest.raises(IncidentError, match="Choose one of: no, yes") as err:
        _answer(incident, "can_connect", "maybe", responder)
    assert err.value.field == "answer"


def test_restart_abandons_the_walk_and_starts_on_the_current_version(incident, responder):
    first = services.triage_walk_start(incident_id=incident.pk, actor=responder)
    _answer(incident, "can_connect", "no", responder)
    again = services.triage_walk_start(incident_id=incident.pk, actor=responder)
    assert again.pk == first.pk  # start is idempotent
    second = services.triage_walk_start(incident_id=incident.pk, actor=responder, restart=True)
    first.refresh_from_db()
    assert first.status == WalkStatus.ABANDONED and second.pk != first.pk
    assert second.current_node.key == "can_connect"
    assert TimelineEvent.objects.filter(
        incident=incident, kind=EventKind.TRIAGE, data__action="restarted"
    ).exists()


def test_a_recorded_walk_is_unchanged_by_a_new_version(incident, responder, admin_user):
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    _answer(incident, "can_connect", "yes", responder)
    draft = services.tree_draft_from(tree_id=selectors.tree_current().pk, actor=admin_user)
    TriageNode.objects.filter(tree=draft, key="performance_issue").update(text="Slow?")
    TriageAnswer.objects.filter(tree=draft, from_node__key="can_connect", key="yes").update(
        label="Yes, it connects"
    )
    services.tree_publish(tree_id=draft.pk, actor=admin_user)
    walk = selectors.walk_current(incident_id=incident.pk)
    state = selectors.walk_state(walk)
    assert walk.tree.version == 1
    assert state["question"]["text"] == "Performance issue?"
    assert state["steps"][0].answer_label == "Yes"


def test_apply_outcome_changes_severity_and_kind_with_timeline_events(incident, commander):
    assert incident.severity == "SEV2" and incident.kind == "availability"
    services.triage_walk_start(incident_id=incident.pk, actor=commander)
    _answer(incident, "can_connect", "yes", commander)
    _answer(incident, "performance_issue", "yes", commander)
    _answer(incident, "performance_severity", "usable", commander)
    services.triage_outcome_apply(incident_id=incident.pk, actor=commander)
    incident.refresh_from_db()
    assert (incident.severity, incident.kind) == ("SEV3", "performance")
    change = TimelineEvent.objects.get(incident=incident, kind=EventKind.SEVERITY_CHANGED)
    assert "triage (tree v1): Analyze slow queries" in change.message
    assert TimelineEvent.objects.filter(
        incident=incident, kind=EventKind.TRIAGE, data__action="applied"
    ).exists()


def test_apply_before_an_outcome_or_without_a_severity_is_refused(incident, commander):
    services.triage_walk_start(incident_id=incident.pk, actor=commander)
    with pytest.raises(IncidentError, match="not reached an outcome"):
        services.triage_outcome_apply(incident_id=incident.pk, actor=commander)
    _answer(incident, "can_connect", "yes", commander)
    _answer(incident, "performance_issue", "no", commander)
    _answer(incident, "data_integrity_issue", "no", commander)
    with pytest.raises(IncidentError, match="proposes no severity"):
        services.triage_outcome_apply(incident_id=incident.pk, actor=commander, kind=False)


def test_closed_incidents_are_not_triaged(make_incident, responder):
    closed = make_incident(status="closed")
    with pytest.raises(IncidentError, match="closed"):
        services.triage_walk_start(incident_id=closed.pk, actor=responder)


@pytest.mark.django_db(transaction=True)
def test_two_responders_answering_at_once_one_wins_the_other_gets_a_conflict(responder):
    import threading

    from django.db import connection

    from incidents import services as incident_services

    incident = incident_services.incident_declare(title="Race", severity="SEV3", actor=responder)
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    barrier = threading.Barrier(2)
    outcomes = []

    def answer(value):
        try:
            barrier.wait(timeout=5)
            _answer(incident, "can_connect", value, responder)
            outcomes.append("ok")
        except IncidentConflict:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=answer, args=(v,)) for v in ("yes", "no")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert sorted(outcomes) == ["conflict", "ok"]
    walk = selectors.walk_current(incident_id=incident.pk)
    assert walk.steps.filter(withdrawn_at__isnull=True).count() == 1
