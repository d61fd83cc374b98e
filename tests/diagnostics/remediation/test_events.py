"""diagnostics.remediation.events: remediation and runbook events' kind, message and data."""

import pytest

from diagnostics.remediation import events
from incidents.models import EventKind
from tests.factories import (
    IncidentFactory,
    IncidentRunbookFactory,
    IncidentRunbookStepFactory,
    RemediationActionFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

RESULTS = [
    {"pid": 4242, "action": "cancel", "outcome": "cancelled", "detail": ""},
    {"pid": 4243, "action": "cancel", "outcome": "skipped", "detail": "query changed"},
]


def _action(**kwargs):
    return RemediationActionFactory(
        incident=IncidentFactory(), target__name="shop", filters={"state": "active"}, **kwargs
    )


def test_execution_tallies_each_backend():
    action = _action(kind="cancel")
    user = UserFactory(role="commander")
    event = events.remediation_executed_event(action, results=RESULTS, actor=user)
    assert event.kind == EventKind.REMEDIATION
    assert event.message == (
        "Cancel query on shop: 1 cancelled, 1 skipped "
        "(pid 4242 cancelled; pid 4243 skipped: query changed)."
    )
    assert event.actor == user and event.actor_label == ""
    assert event.data == {
        "remediation_id": action.pk,
        "target_id": action.target_id,
        "target_name": "shop",
        "kind": "cancel",
        "phase": "execution",
        "filters": {"state": "active"},
        "force": False,
        "counts": {"cancelled": 1, "skipped": 1},
        "results": RESULTS,
    }


def test_escalation_is_quells_and_says_so():
    action = _action(kind="cancel_then_terminate")
    results = [{"pid": 4242, "action": "terminate", "outcome": "terminated", "detail": "gone"}]
    event = events.remediation_escalated_event(action, results=results)
    assert event.message == (
        "Escalation (terminate after the grace period) on shop: 1 terminated "
        "(pid 4242 terminated: gone)."
    )
    assert event.actor is None and event.actor_label == "remediation"
    assert (event.data["phase"], event.data["counts"]) == ("escalation", {"terminated": 1})


def test_nothing_done_is_said_plainly():
    assert events.summary(_action(kind="terminate"), []) == (
        "Terminate backend on shop: nothing done."
    )


def test_failure_says_why():
    action = _action(kind="terminate", error="Could not reach shop: refused", confirmed=[[1, "x"]])
    event = events.remediation_failed_event(action)
    assert event.kind == EventKind.REMEDIATION
    assert event.message == "Terminate backend on shop failed: Could not reach shop: refused"
    assert event.data == {
        "remediation_id": action.pk,
        "target_id": action.target_id,
        "kind": "terminate",
        "error": "Could not reach shop: refused",
        "confirmed": [[1, "x"]],
    }


def test_runbook_started_and_steps():
    run = IncidentRunbookFactory(title="Lock pile-up", runbook__key="locks")
    user = UserFactory(role="responder")
    started = events.runbook_started_event(run, steps=2, actor=user)
    assert started.kind == EventKind.RUNBOOK_STEP
    assert started.message == "Runbook started: Lock pile-up (2 steps)"
    assert started.data == {"runbook_run_id": run.pk, "runbook": "locks", "phase": "started"}
    assert started.actor == user

    first = IncidentRunbookStepFactory(run=run, position=1, title="Find the root blocker")
    done = events.runbook_step_event(
        run, step=first, done=True, note="pid 4242", finished=1, total=2, actor=user
    )
    assert done.message == "Lock pile-up, step 1/2 done: Find the root blocker — pid 4242"
    assert done.data == {
        "runbook_run_id": run.pk,
        "runbook": "locks",
        "step_id": first.pk,
        "position": 1,
        "title": "Find the root blocker",
        "done": True,
        "note": "pid 4242",
        "progress": {"done": 1, "total": 2},
    }

    last = IncidentRunbookStepFactory(run=run, position=2, title="Cancel it")
    complete = events.runbook_step_event(run, step=last, done=True, finished=2, total=2)
    assert complete.message == "Lock pile-up, step 2/2 done: Cancel it (runbook complete)"
    assert complete.actor is None and complete.actor_label == "runbooks"

    reopened = events.runbook_step_event(run, step=last, done=False, finished=1, total=2)
    assert reopened.message == "Lock pile-up, step 2/2 reopened: Cancel it"
    assert reopened.data["done"] is False


def test_changed_something_judges_remediation_and_runbook_records():
    action = _action(kind="cancel")
    run = IncidentRunbookFactory(incident=action.incident)
    step = IncidentRunbookStepFactory(run=run, position=1)
    did = events.remediation_executed_event(action, results=RESULTS)
    nothing = events.remediation_executed_event(action, results=RESULTS[1:])
    action.error = "Could not reach shop: refused"
    failed = events.remediation_failed_event(action)
    started = events.runbook_started_event(run, steps=1)
    done = events.runbook_step_event(run, step=step, done=True, finished=1, total=1)
    reopened = events.runbook_step_event(run, step=step, done=False, finished=0, total=1)
    assert [events.changed_something(e) for e in (did, done)] == [True, True]
    assert not any(events.changed_something(e) for e in (nothing, failed, started, reopened))
