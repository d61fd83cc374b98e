"""diagnostics.integrity.events: the run summary event's kind, message and data."""

import pytest

from diagnostics.integrity import events
from diagnostics.integrity.models import IntegrityRunStatus
from incidents.models import EventKind
from incidents.services import timeline_append
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


def test_timeline_status_lets_a_verification_outrank_a_later_ad_hoc_run():
    incident = IncidentFactory()
    target = IntegrityRunFactory().target

    def record(purpose, status, violations, summary):
        run = IntegrityRunFactory(
            incident=incident,
            target=target,
            purpose=purpose,
            status=status,
            checks_violated=violations,
            summary=summary,
        )
        return events.run_summary_event(run, rows=[], comparison=None, url=URL)

    baseline = record("baseline", IntegrityRunStatus.SUCCEEDED, 2, "Baseline: 2 violations")
    assert events.timeline_status([baseline]) == (f"Baseline: 2 violations — {URL}", None)
    verified = record("verification", IntegrityRunStatus.SUCCEEDED, 0, "Verification: clean")
    adhoc = record("adhoc", IntegrityRunStatus.SUCCEEDED, 1, "Ad hoc: 1 violation")
    assert events.timeline_status([baseline, verified, adhoc]) == (
        f"Verification: clean — {URL}",
        True,
    )
    failed = record("verification", IntegrityRunStatus.FAILED, 0, "Verification failed")
    assert events.timeline_status([verified, failed])[1] is False
    assert events.timeline_status([]) == ("", None)


def test_timeline_status_reads_events_another_tool_posted():
    incident = IncidentFactory()
    posted = timeline_append(
        incident_id=incident.pk,
        kind="integrity",
        message="pg_checksums: clean",
        actor_label="checksums",
        data={"target_name": "shop", "passed": True},
    )
    assert events.timeline_status([posted]) == ("pg_checksums: clean", True)
