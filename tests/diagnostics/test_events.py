"""diagnostics.events: each function records its kind, message and data on the timeline."""

import pytest

from diagnostics import events
from diagnostics.models import RunStatus
from incidents.models import EventKind
from tests.factories import (
    CheckResultFactory,
    DiagnosticRunFactory,
    IncidentFactory,
    TargetDatabaseFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

URL = "http://quell.example/diagnostics/runs/1/"


def test_affected_target_added_and_removed():
    incident = IncidentFactory()
    target = TargetDatabaseFactory(name="shop", environment="production")
    user = UserFactory(role="responder")
    added = events.affected_target_added_event(
        incident_id=incident.pk, target=target, before=[], after=["shop"], actor=user
    )
    assert added.kind == EventKind.FIELDS_CHANGED
    assert added.message == "Affected target added: shop (production)"
    assert added.data == {
        "changes": {"affected_targets": {"from": [], "to": ["shop"]}},
        "target_id": target.pk,
    }
    assert added.actor == user and added.actor_label == ""

    removed = events.affected_target_removed_event(
        incident_id=incident.pk, target_id=target.pk, target_name="shop", before=["shop"], after=[]
    )
    assert removed.message == "Affected target removed: shop"
    assert removed.data["changes"] == {"affected_targets": {"from": ["shop"], "to": []}}
    assert removed.actor is None and removed.actor_label == "diagnostics"


def test_run_summary_puts_the_worst_findings_first():
    incident = IncidentFactory()
    run = DiagnosticRunFactory(
        incident=incident,
        target__name="shop",
        status=RunStatus.SUCCEEDED,
        worst_status="critical",
    )
    rows = [
        CheckResultFactory(run=run, key="ok_check", status="ok"),
        CheckResultFactory(
            run=run,
            key="locks",
            title="Lock waits",
            status="warning",
            summary="2 waiting",
            findings=[{"pid": n} for n in range(5)],
        ),
        CheckResultFactory(
            run=run, key="disk", title="Disk", status="critical", summary="98 % full", fix="grow"
        ),
    ]
    event = events.run_summary_event(run, rows=rows, url=URL)
    assert event.kind == EventKind.DIAGNOSTIC_RUN
    assert event.message == (
        "Diagnostics on shop: CRITICAL (1 critical, 1 warning, 1 ok). "
        f"Disk: 98 % full; Lock waits: 2 waiting — {URL}"
    )
    assert event.actor_label == "diagnostics"
    data = event.data
    assert (data["run_id"], data["target_name"], data["url"]) == (run.pk, "shop", URL)
    assert data["counts"] == {"ok": 1, "warning": 1, "critical": 1}
    assert [f["key"] for f in data["findings"]] == ["disk", "locks"]
    assert data["findings"][0]["fix"] == "grow"
    # The timeline keeps a few rows per check; the run page has them all.
    assert len(data["findings"][1]["rows"]) == events.TIMELINE_FINDINGS_PER_CHECK


def test_run_summary_of_a_failed_run_says_why():
    incident = IncidentFactory()
    run = DiagnosticRunFactory(
        incident=incident, target__name="shop", status=RunStatus.FAILED, error="timed out"
    )
    event = events.run_summary_event(run, rows=[], url=URL)
    assert event.message == f"Diagnostics on shop failed: timed out — {URL}"
    assert event.data["status"] == "failed" and event.data["findings"] == []
