"""Roles, timeline and manual-report endpoints; the schema, docs page and token command."""

import datetime
import hashlib
import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from rest_framework.test import APIClient

from config.accounts.models import ApiToken
from incidents import services
from incidents.models import EventKind, Incident, ResponderAssignment, Status
from tests.factories import UserFactory, api_token_for

pytestmark = pytest.mark.django_db


def roles(pk):
    return f"/api/v1/incidents/{pk}/roles/"


def timeline(pk):
    return f"/api/v1/incidents/{pk}/timeline/"


# --- roles ------------------------------------------------------------------------------------


def test_assign_by_username_and_by_id(commander_api, incident, commander, responder):
    by_name = commander_api.post(
        roles(incident.pk), {"role": "incident_commander", "user": "commander"}
    )
    assert by_name.status_code == 201, by_name.json()
    assert by_name.json()["user"] == {"id": commander.pk, "username": "commander"}
    assert by_name.json()["assigned_by"]["username"] == "commander"
    by_id = commander_api.post(roles(incident.pk), {"role": "technical_lead", "user": responder.pk})
    assert by_id.status_code == 201
    assert by_id.json()["role_label"] == "Technical Lead"


def test_assign_replaces_and_lists_history(commander_api, incident, commander, responder):
    commander_api.post(roles(incident.pk), {"role": "technical_lead", "user": "responder"})
    commander_api.post(roles(incident.pk), {"role": "technical_lead", "user": "commander"})
    body = commander_api.get(roles(incident.pk)).json()
    assert [(a["user"]["username"], a["is_active"]) for a in body["history"]] == [
        ("responder", False),
        ("commander", True),
    ]
    assert [a["user"]["username"] for a in body["current"]] == ["commander"]
    assert body["history"][0]["relieved_by"]["username"] == "commander"
    assert body["required_roles"] == [
        "incident_commander",
        "technical_lead",
        "operations_lead",
        "communications_lead",
    ]
    assert [m["role"] for m in body["missing_roles"]] == [
        "incident_commander",
        "operations_lead",
        "communications_lead",
    ]


@pytest.mark.parametrize(
    ("payload", "field", "message"),
    [
        ({"role": "chef", "user": "responder"}, "role", None),
        ({"role": "technical_lead", "user": "ghost"}, "user", "No active user 'ghost'."),
        ({"role": "technical_lead"}, "user", "This field is required."),
        (
            {"role": "other", "user": "responder"},
            "role_name",
            "Name the role (for example 'Database specialist').",
        ),
    ],
)
def test_assign_rejects_bad_input(responder_api, incident, payload, field, message):
    response = responder_api.post(roles(incident.pk), payload)
    assert response.status_code == 400
    body = response.json()
    assert field in body["errors"]
    if message:
        assert body["errors"][field] == [message]
    assert not ResponderAssignment.objects.exists()


def test_assign_on_closed_incident_is_400(commander_api, responder, make_incident):
    incident = make_incident(status=Status.CLOSED)
    response = commander_api.post(
        roles(incident.pk), {"role": "technical_lead", "user": "responder"}
    )
    assert response.status_code == 400
    assert "closed incident cannot be staffed" in response.json()["detail"]


def test_relieve(responder_api, incident, commander, responder):
    assignment = services.role_assign(
        incident_id=incident.pk, role="operations_lead", user=commander
    )
    response = responder_api.post(f"{roles(incident.pk)}{assignment.pk}/relieve/")
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert response.json()["relieved_by"]["username"] == "responder"
    assert incident.timeline.filter(kind=EventKind.ROLE_RELIEVED).count() == 1


def test_relieve_assignment_of_another_incident_is_404(responder_api, incident, commander):
    other = services.incident_declare(title="Other", severity="SEV4")
    assignment = services.role_assign(
        incident_id=other.pk, role="incident_commander", user=commander
    )
    response = responder_api.post(f"{roles(incident.pk)}{assignment.pk}/relieve/")
    assert response.status_code == 404
    assignment.refresh_from_db()
    assert assignment.is_active


def test_viewer_cannot_relieve(viewer_api, incident, commander):
    assignment = services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=commander
    )
    assert viewer_api.post(f"{roles(incident.pk)}{assignment.pk}/relieve/").status_code == 403


# --- timeline ---------------------------------------------------------------------------------


def test_post_note_and_list_timeline(responder_api, incident, responder):
    earlier = (timezone.now() - datetime.timedelta(minutes=30)).isoformat()
    created = responder_api.post(
        timeline(incident.pk), {"message": "Paged the DBA", "occurred_at": earlier}
    )
    assert created.status_code == 201
    assert created.json()["kind"] == "note"
    assert created.json()["actor"] == {"id": responder.pk, "username": "responder"}
    responder_api.post(timeline(incident.pk), {"message": "Killed the blocking query"})
    oldest = responder_api.get(timeline(incident.pk)).json()
    assert [e["message"] for e in oldest["results"]] == [
        "Paged the DBA",
        oldest["results"][1]["message"],
        "Killed the blocking query",
    ]
    assert oldest["results"][1]["kind"] == "declared"
    newest = responder_api.get(timeline(incident.pk), {"order": "newest"}).json()
    assert newest["results"][0]["message"] == "Killed the blocking query"
    notes = responder_api.get(timeline(incident.pk), {"kind": "note"}).json()
    assert notes["count"] == 2


def test_timeline_is_paginated(viewer_api, incident):
    for i in range(60):
        services.timeline_append(incident_id=incident.pk, message=f"step {i}")
    first = viewer_api.get(timeline(incident.pk)).json()
    assert first["count"] == 61
    assert len(first["results"]) == 50
    second = viewer_api.get(timeline(incident.pk), {"page": 2}).json()
    assert len(second["results"]) == 11


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "message"),
        ({"message": ""}, "message"),
        ({"message": "x", "occurred_at": "soon"}, "occurred_at"),
    ],
)
def test_note_rejects_bad_input(responder_api, incident, payload, field):
    response = responder_api.post(timeline(incident.pk), payload)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_note_in_the_future_is_refused(responder_api, incident):
    future = (timezone.now() + datetime.timedelta(hours=2)).isoformat()
    response = responder_api.post(timeline(incident.pk), {"message": "x", "occurred_at": future})
    assert response.status_code == 400
    assert response.json()["errors"]["occurred_at"] == ["An event cannot happen in the future."]


def test_timeline_of_unknown_incident_is_404(viewer_api):
    assert viewer_api.get(timeline(424242)).status_code == 404


def test_timeline_bad_kind_is_400(viewer_api, incident):
    assert viewer_api.get(timeline(incident.pk), {"kind": "gossip"}).status_code == 400


# --- reports ----------------------------------------------------------------------------------


def test_report_without_incident_creates_one(responder_api):
    response = responder_api.post(
        "/api/v1/reports/",
        {
            "source": "user_report",
            "summary": "Search returns stale prices",
            "details": "Three tickets since 9:00",
            "reporter": "support",
            "severity": "SEV2",
            "kind": "data_integrity",
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["outcome"] == "incident_created"
    assert body["created"] is True
    assert body["incident"]["detection_source"] == "user_report"
    assert body["incident"]["severity"] == "SEV2"
    assert body["event"]["kind"] == "report"
    assert Incident.objects.count() == 1


def test_report_with_incident_adds_a_note(responder_api, incident):
    response = responder_api.post(
        "/api/v1/reports/",
        {"source": "internal_report", "summary": "Nightly ETL failed too", "incident": incident.pk},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["outcome"] == "note_added"
    assert body["created"] is False
    assert body["incident"]["id"] == incident.pk
    assert Incident.objects.count() == 1
    assert incident.timeline.filter(kind=EventKind.REPORT).count() == 1


def test_report_on_resolved_incident_is_400(responder_api, make_incident):
    incident = make_incident(status=Status.RESOLVED)
    response = responder_api.post(
        "/api/v1/reports/", {"source": "user_report", "summary": "x", "incident": incident.pk}
    )
    assert response.status_code == 400
    assert "open incidents only" in response.json()["errors"]["incident"][0]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"summary": "x"}, "source"),
        ({"source": "monitor", "summary": "x"}, "source"),
        ({"source": "user_report"}, "summary"),
        ({"source": "user_report", "summary": "x", "incident": 99999}, "incident"),
        ({"source": "user_report", "summary": "x", "severity": "SEV8"}, "severity"),
    ],
)
def test_report_rejects_bad_input(responder_api, payload, field):
    response = responder_api.post("/api/v1/reports/", payload)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert not Incident.objects.exists()


# --- schema, docs, tokens ---------------------------------------------------------------------


def test_incidents_schema_generates_without_warnings_or_errors():
    """The incidents routes alone (other apps answer for their own routes' annotations)."""
    from django.urls import include, path
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        generator = SchemaGenerator(patterns=[path("api/v1/", include("incidents.api.urls"))])
        schema = generator.get_schema(request=None, public=True)
    problems = dict(GENERATOR_STATS._warn_cache) | dict(GENERATOR_STATS._error_cache)
    GENERATOR_STATS.reset()
    assert problems == {}
    validate_schema(schema)
    for route in (
        "/api/v1/incidents/",
        "/api/v1/incidents/{incident_id}/",
        "/api/v1/incidents/{incident_id}/transition/",
        "/api/v1/incidents/{incident_id}/severity/",
        "/api/v1/incidents/{incident_id}/acknowledge/",
        "/api/v1/incidents/{incident_id}/roles/",
        "/api/v1/incidents/{incident_id}/roles/{assignment_id}/relieve/",
        "/api/v1/incidents/{incident_id}/timeline/",
        "/api/v1/reports/",
    ):
        assert route in schema["paths"]
    params = {p["name"] for p in schema["paths"]["/api/v1/incidents/"]["get"]["parameters"]}
    assert {"severity", "status", "open", "search", "ordering", "page", "page_size"} <= params
    assert "IncidentStatusEnum" in schema["components"]["schemas"]


def test_schema_and_docs_need_login(client, viewer):
    assert client.get("/api/v1/schema/").status_code in (401, 403)
    client.force_login(viewer)
    assert client.get("/api/v1/schema/").status_code == 200
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    # Swagger UI's files are served by Quell itself (drf-spectacular-sidecar), not a CDN, so
    # the page renders offline.
    assert b"drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in docs.content
    assert b"cdn.jsdelivr" not in docs.content


def test_quell_token_issues_prints_once_and_rotates(db):
    user = UserFactory(username="ci-bot", role="responder")
    out = io.StringIO()
    call_command("quell_token", "ci-bot", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip()
    # Only the digest is stored: the secret is nowhere in the database.
    token = ApiToken.objects.get(user=user)
    assert token.digest == hashlib.sha256(key.encode()).hexdigest()
    assert key not in {token.digest, token.prefix, token.name} and key.startswith(token.prefix)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/incidents/").status_code == 200

    rotated = io.StringIO()
    call_command("quell_token", "ci-bot", "--rotate", stdout=rotated, stderr=io.StringIO())
    new_key = rotated.getvalue().strip()
    assert new_key != key
    assert client.get("/api/v1/incidents/").status_code == 401  # the old secret is revoked
    client.credentials(HTTP_AUTHORIZATION=f"Token {new_key}")
    assert client.get("/api/v1/incidents/").status_code == 200

    listing = io.StringIO()
    call_command("quell_token", "ci-bot", "--list", stdout=listing, stderr=io.StringIO())
    assert "revoked" in listing.getvalue() and "active" in listing.getvalue()
    assert key not in listing.getvalue() and new_key not in listing.getvalue()
    call_command("quell_token", "ci-bot", "--revoke", new_key[:8], stderr=io.StringIO())
    assert client.get("/api/v1/incidents/").status_code == 401


def test_quell_token_unknown_user_fails_clearly(db):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("quell_token", "nobody")


@pytest.mark.parametrize("n", [5, 50])
def test_timeline_list_runs_a_fixed_number_of_queries(
    incident, responder, commander, django_assert_num_queries, n
):
    for i in range(n):
        services.timeline_append(
            incident_id=incident.pk, message=f"step {i}", actor=(responder, commander)[i % 2]
        )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(responder)}")
    # Token (with groups), the incident's existence, count, page (actors joined).
    with django_assert_num_queries(4):
        response = client.get(timeline(incident.pk), {"page_size": 100})
    assert len(response.json()["results"]) == n + 1
