"""Triage API: permissions, walking, 400s and 409s, applying the outcome."""

from __future__ import annotations

import pytest

from incidents import services as incident_services
from incidents.models import EventKind, TimelineEvent

pytestmark = pytest.mark.django_db


def url(incident, action=""):
    return f"/api/v1/incidents/{incident.pk}/triage/" + (f"{action}/" if action else "")


def walk_to_minor_performance(client, incident):
    client.post(url(incident), {}, format="json")
    for question, answer in (
        ("can_connect", "yes"),
        ("performance_issue", "yes"),
        ("performance_severity", "usable"),
    ):
        r = client.post(url(incident, "answer"), {"question": question, "answer": answer})
        assert r.status_code == 200, r.content
    return r.json()


def test_anonymous_is_refused(api, incident):
    assert api.get(url(incident)).status_code in (401, 403)
    assert api.get("/api/v1/triage/tree/").status_code in (401, 403)


def test_viewer_reads_the_tree_and_the_walk_but_cannot_walk(viewer_api, incident):
    tree = viewer_api.get("/api/v1/triage/tree/").json()
    assert tree["version"] == 1 and tree["root"] == "issue_detected"
    by_ref = {n["chart_ref"]: n for n in tree["nodes"]}
    assert [a["label"] for a in by_ref["B"]["answers"]] == ["No", "Yes"]
    assert by_ref["C"]["severity"] == "SEV1"
    body = viewer_api.get(url(incident)).json()
    assert body["walk"] is None
    assert viewer_api.post(url(incident), {}).status_code == 403
    assert viewer_api.post(url(incident, "back")).status_code == 403


def test_responder_walks_answer_by_answer(responder_api, incident):
    r = responder_api.post(url(incident), {}, format="json")
    assert r.status_code == 201
    walk = r.json()["walk"]
    assert walk["question"]["key"] == "can_connect"
    assert [p["chart_ref"] for p in walk["start_path"]] == ["A", "B"]
    assert responder_api.post(url(incident), {}, format="json").status_code == 200  # in use
    r = responder_api.post(url(incident, "answer"), {"question": "can_connect", "answer": "no"})
    walk = r.json()["walk"]
    assert walk["question"]["key"] == "recent_schema_change"
    assert walk["proposed_severity"] == "SEV1"
    assert walk["steps"][0]["passed"][0]["text"] == "SEV1: Connection Issue"
    r = responder_api.post(
        url(incident, "answer"), {"question": "recent_schema_change", "answer": "yes"}
    )
    walk = r.json()["walk"]
    assert walk["status"] == "completed" and walk["outcome"]["text"] == "Check migration logs"
    assert walk["can_apply_severity"] is False
    steps = walk["outcome"]["next_steps"]
    assert steps[0]["action"] == "check_migrations" and steps[0]["check"] == "recent_migrations"
    # Like every url in the API, where to act is absolute (or '' when there is no such place).
    assert all(s["url"] == "" or s["url"].startswith("http://testserver/") for s in steps)
    assert any(s["url"] for s in steps), steps
    r = responder_api.post(url(incident, "back"))
    assert r.json()["walk"]["question"]["key"] == "recent_schema_change"
    history = responder_api.get(url(incident, "walks")).json()["results"]
    assert len(history[0]["steps"]) == 2 and history[0]["steps"][1]["withdrawn_at"]


def test_bad_answers_get_400_and_stale_ones_409(responder_api, incident):
    assert responder_api.post(url(incident, "back")).status_code == 400  # nothing started
    responder_api.post(url(incident), {}, format="json")
    r = responder_api.post(url(incident, "answer"), {"question": "can_connect"})
    assert r.status_code == 400 and "answer" in r.json()["errors"]
    r = responder_api.post(url(incident, "answer"), {"question": "can_connect", "answer": "maybe"})
    assert r.status_code == 400 and "Choose one of" in r.json()["errors"]["answer"][0]
    r = responder_api.post(url(incident, "answer"), {"question": "high_load", "answer": "yes"})
    assert r.status_code == 409
    r = responder_api.post(url(incident, "apply"), {"severity": False, "kind": False})
    assert r.status_code == 400
    assert responder_api.get("/api/v1/incidents/999999/triage/").status_code == 404
    assert responder_api.get("/api/v1/triage/trees/99/").status_code == 404


def test_responder_applies_kind_only_and_commander_applies_severity(
    responder_api, commander_api, incident
):
    walk_to_minor_performance(responder_api, incident)
    r = responder_api.post(url(incident, "apply"), {}, format="json")
    assert r.status_code == 403
    r = responder_api.post(url(incident, "apply"), {"severity": False}, format="json")
    assert r.status_code == 200
    incident.refresh_from_db()
    assert (incident.severity, incident.kind) == ("SEV2", "performance")
    r = commander_api.post(url(incident, "apply"), {"kind": False}, format="json")
    assert r.status_code == 200 and r.json()["walk"]["severity_applied_at"]
    incident.refresh_from_db()
    assert incident.severity == "SEV3"
    event = TimelineEvent.objects.get(incident=incident, kind=EventKind.SEVERITY_CHANGED)
    assert "triage" in event.message and event.actor.username == "commander"


def test_incident_commander_in_responder_group_may_apply_severity(
    responder, responder_api, incident
):
    incident_services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=responder
    )
    walk_to_minor_performance(responder_api, incident)
    assert responder_api.post(url(incident, "apply"), {}, format="json").status_code == 200


def test_restart_returns_201_and_suggestions_endpoint_answers(responder_api, incident):
    walk_to_minor_performance(responder_api, incident)
    r = responder_api.post(url(incident), {"restart": True}, format="json")
    assert r.status_code == 201 and r.json()["walk"]["steps"] == []
    assert responder_api.get(url(incident, "suggestions")).json() == {"suggestions": {}}
