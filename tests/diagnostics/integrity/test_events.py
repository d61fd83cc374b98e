"""diagnostics.integrity.events: the run summary event's kind, message and data."""

import pytest

from diagnostics.integrity import events
from diagnostics.integrity.models import IntegrityRunStatus
from incidents.models import EventKind
from tests.factories import (
    IncidentFactory,
    IntegrityCheckFactory,
    IntegrityResultFactory,
    IntegrityRunFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

URL = "http://quell.example/integrity/runs/1/"


def test_run_with_violations_is_recorded_with_each_check():
    incident = IncidentFactory()
    run = IntegrityRunFactory(
        incident=incident,
        target__name="shop",
        status=IntegrityRunStatus.SUCCEEDED,
        checks_violated=1,
        summary="Ad hoc check: 1 violation in 1 check",
    )
    check = IntegrityCheckFactory(target=run.target, name="orphan orders")
    row = IntegrityResultFactory(
        run=run,
        integrity_check=check,
        check_name="orphan orders",
        status="violation",
        count=3,
        expected={"max": 0},
    )
    comparison = {"checks": [{"name": "orphan orders", "before": 0, "after": 3}]}
    event = events.run_summary_event(run, rows=[row], comparison=comparison, url=URL)
    assert event.kind == EventKind.INTEGRITY
    assert event.message == f"Ad hoc check: 1 violation in 1 check — {URL}"
    assert event.actor is None and event.actor_label == "integrity"
    data = event.data
    assert (data["integrity_run_id"], data["target_name"], data["url"]) == (run.pk, "shop", URL)
    assert (data["status"], data["ok"], data["checks"], data["violations"]) == (
        "violations",
        False,
        1,
        1,
    )
    assert data["results"] == [
        {
            "check_id": check.pk,
            "name": "orphan orders",
            "kind": "row_count",
            "severity": "high",
            "status": "violation",
            "count": 3,
            "expected": {"max": 0},
        }
    ]
    assert data["diff"] == comparison["checks"]


def test_a_clean_run_is_ok_and_credits_its_requester():
    user = UserFactory(role="responder")
    run = IntegrityRunFactory(
        incident=IncidentFactory(),
        requested_by=user,
        status=IntegrityRunStatus.SUCCEEDED,
        summary="Verification: 0 violations in 0 checks",
    )
    event = events.run_summary_event(run, rows=[], comparison=None, url=URL)
    assert event.actor == user and event.actor_label == ""
    assert (event.data["status"], event.data["ok"], event.data["diff"]) == ("ok", True, [])


def test_a_failed_run_says_failed():
    run = IntegrityRunFactory(
        incident=IncidentFactory(),
        status=IntegrityRunStatus.FAILED,
        error="could not connect",
        summary="Ad hoc check failed",
    )
    event = events.run_summary_event(run, rows=[], comparison=None, url=URL)
    assert (event.data["status"], event.data["error"]) == ("failed", "could not connect")
