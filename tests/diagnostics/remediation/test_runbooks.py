"""Runbooks: seeded definitions, starting one on an incident, ticking steps onto the timeline,
the API (roles, 400s), the panel and the admin."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from rest_framework.test import APIClient

from diagnostics.remediation.models import IncidentRunbook, Runbook, RunbookStep
from diagnostics.remediation.runbooks import services
from diagnostics.remediation.runbooks.defaults import DEFAULT_RUNBOOKS
from diagnostics.services import DiagnosticsError
from incidents.models import EventKind, Status, TimelineEvent
from incidents.services import incident_declare

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def incident(responder):
    return incident_declare(title="Checkout slow", severity="SEV2", actor=responder)


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _events(incident):
    return list(
        TimelineEvent.objects.filter(incident=incident, kind=EventKind.RUNBOOK_STEP).order_by("id")
    )


def test_the_playbooks_runbooks_are_seeded_by_the_migration():
    keys = list(Runbook.objects.values_list("key", flat=True))
    assert keys == [
        "quick-mitigation",
        "schema-rollback",
        "restore-from-backup",
        "point-in-time-recovery",
    ]
    rollback = RunbookStep.objects.filter(runbook__key="schema-rollback")
    details = " ".join(rollback.values_list("detail", flat=True))
    assert "npx prisma migrate diff" in details and "--rolled-back" in details
    assert "npx prisma db execute --file down.sql" in details
    quick = Runbook.objects.get(key="quick-mitigation")
    assert {s.action for s in quick.steps.all()} >= {"run_diagnostics", "remediation_preview"}
    assert len(DEFAULT_RUNBOOKS) == 4


def test_starting_a_runbook_copies_its_steps_and_is_on_the_timeline(incident, responder):
    run, created = services.runbook_start(
        incident_id=incident.pk, runbook="quick-mitigation", actor=responder
    )
    assert created
    definition = Runbook.objects.get(key="quick-mitigation")
    assert [s.title for s in run.steps.all()] == [s.title for s in definition.steps.all()]
    again, created_again = services.runbook_start(
        incident_id=incident.pk, runbook=str(definition.pk), actor=responder
    )
    assert again.pk == run.pk and not created_again
    events = _events(incident)
    assert len(events) == 1 and events[0].message.startswith("Runbook started: Quick mitigation")
    # Editing the definition later does not rewrite what was started.
    definition.steps.update(title="changed")
    assert "changed" not in [s.title for s in run.steps.all()]


def test_ticking_a_step_with_a_note_writes_a_runbook_step_event(incident, responder):
    run, _ = services.runbook_start(
        incident_id=incident.pk, runbook="point-in-time-recovery", actor=responder
    )
    step = run.steps.order_by("position")[1]
    services.runbook_step_set(
        incident_id=incident.pk,
        run_id=run.pk,
        step_id=step.pk,
        done=True,
        note="14:02 UTC, before the bad deploy",
        actor=responder,
    )
    step.refresh_from_db()
    assert step.done and step.done_by == responder and step.done_at is not None
    event = _events(incident)[-1]
    assert event.actor == responder
    assert "step 2/5 done" in event.message and "14:02 UTC" in event.message
    assert event.data["progress"] == {"done": 1, "total": 5}
    assert event.data["note"] == "14:02 UTC, before the bad deploy"
    # A double click writes nothing more.
    services.runbook_step_set(
        incident_id=incident.pk, run_id=run.pk, step_id=step.pk, done=True, actor=responder
    )
    assert len(_events(incident)) == 3 - 1
    services.runbook_step_set(
        incident_id=incident.pk, run_id=run.pk, step_id=step.pk, done=False, actor=responder
    )
    step.refresh_from_db()
    assert not step.done and step.done_by is None
    assert "reopened" in _events(incident)[-1].message


def test_the_last_step_completes_the_runbook(incident, responder):
    run, _ = services.runbook_start(
        incident_id=incident.pk, runbook="restore-from-backup", actor=responder
    )
    for step in run.steps.all():
        services.runbook_step_set(
            incident_id=incident.pk, run_id=run.pk, step_id=step.pk, done=True, actor=responder
        )
    run.refresh_from_db()
    assert run.completed_at is not None and run.progress == (5, 5)
    assert _events(incident)[-1].message.endswith("(runbook complete)")


def test_runbooks_refuse_closed_incidents_and_unknown_steps(incident, responder):
    run, _ = services.runbook_start(
        incident_id=incident.pk, runbook="quick-mitigation", actor=responder
    )
    with pytest.raises(DiagnosticsError) as unknown:
        services.runbook_step_set(
            incident_id=incident.pk, run_id=run.pk, step_id=999999, done=True, actor=responder
        )
    assert unknown.value.field == "step"
    type(incident).objects.filter(pk=incident.pk).update(status=Status.CLOSED)
    with pytest.raises(DiagnosticsError) as closed:
        services.runbook_start(incident_id=incident.pk, runbook="schema-rollback", actor=responder)
    assert closed.value.field == "incident"


# --- API -----------------------------------------------------------------------------------


def test_api_lists_starts_and_ticks(incident, responder, viewer):
    listed = _api(viewer).get("/api/v1/diagnostics/runbooks/")
    assert listed.status_code == 200
    assert [r["key"] for r in listed.json()["results"]][:2] == [
        "quick-mitigation",
        "schema-rollback",
    ]
    assert listed.json()["results"][0]["steps"][0]["action"] == "run_diagnostics"

    url = f"/api/v1/diagnostics/incidents/{incident.pk}/runbooks/"
    started = _api(responder).post(url, {"runbook": "schema-rollback"}, format="json")
    assert started.status_code == 201
    body = started.json()
    assert body["progress"] == {"done": 0, "total": 8}
    again = _api(responder).post(url, {"runbook": "schema-rollback"}, format="json")
    assert again.status_code == 200 and again.json()["id"] == body["id"]

    step = body["steps"][2]
    tick = _api(responder).post(
        f"{url}{body['id']}/steps/{step['id']}/",
        {"done": True, "note": "down.sql reviewed by Ana"},
        format="json",
    )
    assert tick.status_code == 200
    ticked = next(s for s in tick.json()["steps"] if s["id"] == step["id"])
    assert ticked["done"] and ticked["note"] == "down.sql reviewed by Ana"
    assert ticked["done_by"] == responder.username
    assert tick.json()["progress"] == {"done": 1, "total": 8}
    assert _api(viewer).get(url).json()["results"][0]["progress"]["done"] == 1


def test_api_roles_and_bad_input(incident, responder, viewer):
    url = f"/api/v1/diagnostics/incidents/{incident.pk}/runbooks/"
    assert _api(viewer).post(url, {"runbook": "schema-rollback"}, format="json").status_code == 403
    unknown = _api(responder).post(url, {"runbook": "nope"}, format="json")
    assert unknown.status_code == 400 and "runbook" in unknown.json()["errors"]
    missing = _api(responder).post(url, {}, format="json")
    assert missing.status_code == 400 and "runbook" in missing.json()["errors"]
    run = _api(responder).post(url, {"runbook": "quick-mitigation"}, format="json").json()
    step_url = f"{url}{run['id']}/steps/{run['steps'][0]['id']}/"
    assert _api(viewer).post(step_url, {"done": True}, format="json").status_code == 403
    bad = _api(responder).post(step_url, {"done": "maybe"}, format="json")
    assert bad.status_code == 400 and "done" in bad.json()["errors"]
    assert _api(responder).post(f"{url}999999/steps/1/", {"done": True}).status_code == 404
    assert APIClient().get("/api/v1/diagnostics/runbooks/").status_code in (401, 403)


# --- panel and admin -----------------------------------------------------------------------


def _client(user, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_panel_start_tick_and_progress(incident, responder):
    client = _client(responder, csrf=True)
    page = client.get(f"/incidents/{incident.pk}/runbooks/", **HTMX).content.decode()
    assert "No runbook started" in page and 'value="quick-mitigation"' in page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)[1]
    refused = client.post(
        f"/incidents/{incident.pk}/runbooks/start/", {"runbook": "quick-mitigation"}, **HTMX
    )
    assert refused.status_code == 403  # no CSRF token
    started = client.post(
        f"/incidents/{incident.pk}/runbooks/start/",
        {"runbook": "quick-mitigation", "csrfmiddlewaretoken": token},
        **HTMX,
    )
    assert started.status_code == 200 and started["HX-Trigger"] == "incidentChanged"
    html = started.content.decode()
    assert "0 of 6 steps done" in html and "Run diagnostics</button>" in html
    assert 'href="#panel-remediation"' in html
    run = IncidentRunbook.objects.get(incident=incident)
    step = run.steps.order_by("position").first()
    ticked = client.post(
        f"/incidents/{incident.pk}/runbooks/{run.pk}/steps/{step.pk}/",
        {"done": "1", "note": "pool recycled", "csrfmiddlewaretoken": token},
        **HTMX,
    )
    assert "1 of 6 steps done" in ticked.content.decode()
    assert "Note: pool recycled" in ticked.content.decode()


def test_panel_is_read_only_for_viewers(incident, responder, viewer):
    services.runbook_start(incident_id=incident.pk, runbook="quick-mitigation", actor=responder)
    html = _client(viewer).get(f"/incidents/{incident.pk}/runbooks/", **HTMX).content.decode()
    assert "0 of 6 steps done" in html and "Done</button>" not in html
    response = _client(viewer).post(
        f"/incidents/{incident.pk}/runbooks/start/", {"runbook": "schema-rollback"}
    )
    assert response.status_code == 403


def test_admin_edits_runbooks_and_shows_remediation_records(admin_user, incident, responder):
    client = _client(admin_user)
    runbook = Runbook.objects.get(key="quick-mitigation")
    assert client.get("/admin/remediation/runbook/").status_code == 200
    assert client.get(f"/admin/remediation/runbook/{runbook.pk}/change/").status_code == 200
    assert client.get("/admin/remediation/remediationaction/").status_code == 200
    services.runbook_start(incident_id=incident.pk, runbook="quick-mitigation", actor=responder)
    assert client.get("/admin/remediation/incidentrunbook/").status_code == 200
    assert client.get("/admin/remediation/remediationaction/add/").status_code == 403
