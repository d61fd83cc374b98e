"""The incidents REST API: auth, permissions, validation, conflicts, filters, pages, queries."""

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from incidents import services
from incidents.models import EventKind, Incident, Status
from tests.factories import IncidentFactory, UserFactory, api_token_for

pytestmark = pytest.mark.django_db

LIST = "/api/v1/incidents/"


def detail(pk):
    return f"/api/v1/incidents/{pk}/"


def action(pk, name):
    return f"/api/v1/incidents/{pk}/{name}/"


# --- authentication and permissions -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", LIST),
        ("post", LIST),
        ("get", "/api/v1/incidents/1/"),
        ("patch", "/api/v1/incidents/1/"),
        ("post", "/api/v1/incidents/1/transition/"),
        ("post", "/api/v1/incidents/1/severity/"),
        ("post", "/api/v1/incidents/1/acknowledge/"),
        ("get", "/api/v1/incidents/1/roles/"),
        ("post", "/api/v1/incidents/1/roles/"),
        ("post", "/api/v1/incidents/1/roles/1/relieve/"),
        ("get", "/api/v1/incidents/1/timeline/"),
        ("post", "/api/v1/incidents/1/timeline/"),
        ("post", "/api/v1/reports/"),
    ],
)
def test_anonymous_requests_are_refused(api, method, path):
    response = getattr(api, method)(path, {})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_user_without_group_is_forbidden(db):
    client = APIClient()
    client.force_authenticate(UserFactory(username="nobody"))
    assert client.get(LIST).status_code == 403


def test_token_authentication_works(viewer, incident):
    token = api_token_for(viewer)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(detail(incident.pk)).status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(detail(incident.pk)).status_code == 401


def test_token_of_inactive_user_is_refused(viewer, incident):
    token = api_token_for(viewer)
    viewer.is_active = False
    viewer.save()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.get(detail(incident.pk))
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."


def test_token_user_groups_decide_access(incident):
    client = APIClient()
    for role, status in (("viewer", 403), ("responder", 201)):
        user = UserFactory(username=f"tok-{role}", role=role)
        client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(user)}")
        assert client.get(detail(incident.pk)).status_code == 200
        response = client.post(f"/api/v1/incidents/{incident.pk}/timeline/", {"message": "hi"})
        assert response.status_code == status


def test_session_authentication_works(client, viewer, incident):
    client.force_login(viewer)
    response = client.get(detail(incident.pk))
    assert response.status_code == 200
    assert response.json()["id"] == incident.pk


def test_viewer_reads_but_cannot_write(viewer_api, incident):
    assert viewer_api.get(LIST).status_code == 200
    assert viewer_api.get(detail(incident.pk)).status_code == 200
    assert viewer_api.get(action(incident.pk, "roles")).status_code == 200
    assert viewer_api.get(action(incident.pk, "timeline")).status_code == 200
    writes = [
        viewer_api.post(LIST, {"title": "x", "severity": "SEV3"}),
        viewer_api.patch(detail(incident.pk), {"title": "x"}),
        viewer_api.post(action(incident.pk, "transition"), {"status": "identified"}),
        viewer_api.post(action(incident.pk, "severity"), {"severity": "SEV1"}),
        viewer_api.post(action(incident.pk, "acknowledge")),
        viewer_api.post(action(incident.pk, "roles"), {"role": "technical_lead", "user": "viewer"}),
        viewer_api.post(action(incident.pk, "timeline"), {"message": "hello"}),
        viewer_api.post("/api/v1/reports/", {"source": "user_report", "summary": "slow"}),
    ]
    assert [r.status_code for r in writes] == [403] * len(writes)
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert incident.timeline.count() == 1


def test_responder_cannot_transition_or_regrade_unless_incident_commander(
    responder_api, responder, incident
):
    refused = responder_api.post(action(incident.pk, "transition"), {"status": "identified"})
    assert refused.status_code == 403
    assert "Incident Commander" in refused.json()["detail"]
    assert responder_api.post(
        action(incident.pk, "severity"), {"severity": "SEV1"}
    ).status_code == (403)
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=responder)
    allowed = responder_api.post(action(incident.pk, "transition"), {"status": "identified"})
    assert allowed.status_code == 200, allowed.json()
    assert allowed.json()["status"] == "identified"
    regraded = responder_api.post(action(incident.pk, "severity"), {"severity": "SEV1"})
    assert regraded.status_code == 200
    assert regraded.json()["severity"] == "SEV1"


def test_ic_of_another_incident_gets_no_rights_here(responder_api, responder, incident):
    other = services.incident_declare(title="Other", severity="SEV3")
    services.role_assign(incident_id=other.pk, role="incident_commander", user=responder)
    response = responder_api.post(action(incident.pk, "transition"), {"status": "identified"})
    assert response.status_code == 403


def test_commander_can_transition(commander_api, commander, incident):
    response = commander_api.post(
        action(incident.pk, "transition"), {"status": "monitoring", "reason": "failover done"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "monitoring"
    assert body["mitigated_at"] is not None
    assert body["allowed_transitions"] == ["investigating", "identified", "resolved"]
    event = incident.timeline.get(kind=EventKind.STATUS_CHANGED)
    assert event.actor == commander
    assert event.data["reason"] == "failover done"


# --- create, retrieve, update -----------------------------------------------------------------


def test_responder_declares_incident(responder_api, responder):
    response = responder_api.post(
        LIST,
        {
            "title": "Primary refuses connections",
            "severity": "SEV1",
            "kind": "availability",
            "description": "too many clients",
            "users_affected_percent": "80",
            "confirmed": True,
        },
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    incident = Incident.objects.get(pk=body["id"])
    assert incident.declared_by == responder
    assert incident.detection_source == "api"
    assert body["channel_name"].startswith("#incident-")
    assert body["channel_name"].endswith("-primary-refuses-connections")
    assert body["severity_definition"].startswith("Database completely unavailable")
    assert body["users_affected_percent"] == "80.00"
    assert [m["role"] for m in body["missing_roles"]] == [
        "incident_commander",
        "technical_lead",
        "operations_lead",
        "communications_lead",
    ]
    assert body["allowed_transitions"] == ["identified", "monitoring", "resolved"]
    assert body["declared_by"] == {"id": responder.pk, "username": "responder"}
    assert incident.timeline.get().kind == EventKind.DECLARED


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({}, {"title", "severity"}),
        ({"title": "x", "severity": "SEV9"}, {"severity"}),
        ({"title": "x", "severity": "SEV2", "kind": "weird"}, {"kind"}),
        (
            {"title": "x", "severity": "SEV2", "users_affected_percent": 101},
            {"users_affected_percent"},
        ),
        ({"title": "x", "severity": "SEV2", "bridge_url": "not a url"}, {"bridge_url"}),
        ({"title": "x" * 201, "severity": "SEV2"}, {"title"}),
        ({"title": "x", "severity": "SEV2", "detected_at": "yesterday"}, {"detected_at"}),
    ],
)
def test_declare_rejects_bad_input_with_field_messages(responder_api, payload, fields):
    response = responder_api.post(LIST, payload)
    assert response.status_code == 400
    body = response.json()
    assert fields <= set(body["errors"]), body
    for name in fields:
        assert isinstance(body["errors"][name], list) and body["errors"][name][0]
    assert not Incident.objects.exists()


def test_declare_rule_violation_is_a_field_error(responder_api):
    future = (timezone.now() + datetime.timedelta(days=1)).isoformat()
    response = responder_api.post(
        LIST, {"title": "Time travel", "severity": "SEV3", "detected_at": future}
    )
    assert response.status_code == 400
    assert response.json()["errors"]["detected_at"] == ["Detection time cannot be in the future."]


def test_retrieve_shows_roles_missing_roles_and_durations(viewer_api, incident, commander):
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=commander)
    services.incident_transition(
        incident_id=incident.pk, to_status=Status.IDENTIFIED, actor=commander
    )
    body = viewer_api.get(detail(incident.pk)).json()
    assert [(r["role"], r["user"]["username"]) for r in body["roles"]] == [
        ("incident_commander", "commander")
    ]
    assert [m["role"] for m in body["missing_roles"]] == [
        "technical_lead",
        "operations_lead",
        "communications_lead",
    ]
    assert body["missing_roles"][0]["label"] == "Technical Lead"
    assert body["durations"]["to_acknowledge"] >= 0
    assert body["durations"]["to_identify"] >= 0
    assert body["durations"]["to_resolve"] is None
    for key in (
        "detected_at",
        "declared_at",
        "acknowledged_at",
        "identified_at",
        "mitigated_at",
        "resolved_at",
        "closed_at",
        "channel_name",
        "bridge_url",
        "scope",
        "business_impact",
    ):
        assert key in body


def test_retrieve_unknown_incident_is_404(viewer_api):
    assert viewer_api.get(detail(999999)).status_code == 404


def test_patch_updates_through_service(responder_api, incident):
    response = responder_api.patch(
        detail(incident.pk), {"scope": "orders table", "reproducible": True}
    )
    assert response.status_code == 200
    assert response.json()["scope"] == "orders table"
    event = incident.timeline.get(kind=EventKind.FIELDS_CHANGED)
    assert set(event.data["changes"]) == {"scope", "reproducible"}


def test_patch_refuses_status_severity_and_read_only_fields(responder_api, incident):
    response = responder_api.patch(
        detail(incident.pk), {"status": "closed", "severity": "SEV1", "channel_name": "#x"}
    )
    assert response.status_code == 400
    body = response.json()
    assert body["errors"]["status"] == ["Not editable here: use the transition action."]
    assert body["errors"]["severity"] == ["Not editable here: use the severity action."]
    assert body["errors"]["channel_name"] == ["Unknown or read-only field."]
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING


def test_patch_closed_incident_is_refused(responder_api, make_incident):
    incident = make_incident(status=Status.CLOSED)
    response = responder_api.patch(detail(incident.pk), {"title": "Renamed"})
    assert response.status_code == 400
    assert "closed incident cannot be edited" in response.json()["detail"]


# --- transitions ------------------------------------------------------------------------------


def test_illegal_transition_is_400_naming_allowed(commander_api, make_incident):
    incident = make_incident(status=Status.RESOLVED)
    response = commander_api.post(action(incident.pk, "transition"), {"status": "monitoring"})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_transition"
    assert body["errors"]["status"] == [
        f"Cannot move incident #{incident.pk} from resolved to monitoring. "
        "Allowed from resolved: investigating, closed."
    ]


def test_transition_bad_input_is_400(commander_api, incident):
    response = commander_api.post(action(incident.pk, "transition"), {"status": "fixed"})
    assert response.status_code == 400
    assert "status" in response.json()["errors"]
    response = commander_api.post(action(incident.pk, "transition"), {})
    assert response.json()["errors"]["status"] == ["This field is required."]


def test_stale_expected_status_is_409(commander_api, incident, commander):
    services.incident_transition(
        incident_id=incident.pk, to_status=Status.IDENTIFIED, actor=commander
    )
    response = commander_api.post(
        action(incident.pk, "transition"),
        {"status": "monitoring", "expected_status": "investigating"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "conflict"
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED


def test_repeated_transition_is_409(commander_api, incident):
    first = commander_api.post(action(incident.pk, "transition"), {"status": "identified"})
    again = commander_api.post(action(incident.pk, "transition"), {"status": "identified"})
    assert (first.status_code, again.status_code) == (200, 409)


def test_view_passes_the_status_it_read_as_expected(commander_api, incident, monkeypatch):
    """Without expected_status from the client, the status the view read is the expectation."""
    seen = {}
    real = services.incident_transition

    def spy(**kwargs):
        seen.update(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(services, "incident_transition", spy)
    commander_api.post(action(incident.pk, "transition"), {"status": "resolved"})
    assert seen["expected_status"] == "investigating"


def test_severity_action_validates(commander_api, incident):
    response = commander_api.post(action(incident.pk, "severity"), {"severity": "SEV0"})
    assert response.status_code == 400
    assert "severity" in response.json()["errors"]


def test_acknowledge_by_responder(responder_api, incident):
    response = responder_api.post(action(incident.pk, "acknowledge"))
    assert response.status_code == 200
    assert response.json()["acknowledged_at"] is not None
    again = responder_api.post(action(incident.pk, "acknowledge"))
    assert again.json()["acknowledged_at"] == response.json()["acknowledged_at"]


# --- list: filters, search, ordering, pagination ----------------------------------------------


@pytest.fixture
def spread(db):
    now = timezone.now()
    rows = [
        ("Replica lag on reports", "SEV2", Status.INVESTIGATING, "performance", "monitor", 1),
        ("Orders table corrupted", "SEV1", Status.IDENTIFIED, "data_integrity", "user_report", 2),
        ("Login slow", "SEV3", Status.RESOLVED, "performance", "internal_report", 10),
        ("Old outage", "SEV2", Status.CLOSED, "availability", "alert", 40),
    ]
    made = {}
    for title, severity, status, kind, source, days in rows:
        made[title] = IncidentFactory(
            title=title,
            severity=severity,
            status=status,
            kind=kind,
            detection_source=source,
            declared_at=now - datetime.timedelta(days=days),
            detected_at=now - datetime.timedelta(days=days, hours=1),
            detected_by="pagerduty" if source == "alert" else "alice",
        )
    return made


def titles(response):
    assert response.status_code == 200, response.json()
    return [row["title"] for row in response.json()["results"]]


def test_list_is_newest_first(viewer_api, spread):
    assert titles(viewer_api.get(LIST)) == [
        "Replica lag on reports",
        "Orders table corrupted",
        "Login slow",
        "Old outage",
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("severity=SEV2", ["Replica lag on reports", "Old outage"]),
        ("severity=SEV1&severity=SEV3", ["Orders table corrupted", "Login slow"]),
        ("status=resolved", ["Login slow"]),
        ("kind=performance", ["Replica lag on reports", "Login slow"]),
        ("detection_source=user_report", ["Orders table corrupted"]),
        ("open=true", ["Replica lag on reports", "Orders table corrupted"]),
        ("open=false", ["Login slow", "Old outage"]),
        ("search=orders", ["Orders table corrupted"]),
        ("search=PAGERDUTY", ["Old outage"]),
        (
            "search=incident-2026",
            ["Replica lag on reports", "Orders table corrupted", "Login slow", "Old outage"],
        ),
        (
            "ordering=severity",
            ["Orders table corrupted", "Replica lag on reports", "Old outage", "Login slow"],
        ),
        (
            "ordering=declared_at",
            ["Old outage", "Login slow", "Orders table corrupted", "Replica lag on reports"],
        ),
    ],
)
def test_list_filters(viewer_api, spread, query, expected):
    assert titles(viewer_api.get(f"{LIST}?{query}")) == expected


def test_list_time_range_filters(viewer_api, spread):
    now = timezone.now()
    after = (now - datetime.timedelta(days=5)).isoformat()
    before = (now - datetime.timedelta(days=5)).isoformat()
    assert titles(viewer_api.get(LIST, {"declared_after": after})) == [
        "Replica lag on reports",
        "Orders table corrupted",
    ]
    assert titles(viewer_api.get(LIST, {"declared_before": before})) == ["Login slow", "Old outage"]
    window = {
        "detected_after": (now - datetime.timedelta(days=11)).isoformat(),
        "detected_before": (now - datetime.timedelta(days=2)).isoformat(),
    }
    assert titles(viewer_api.get(LIST, window)) == ["Orders table corrupted", "Login slow"]


def test_list_search_by_id(viewer_api, spread):
    target = spread["Login slow"]
    assert titles(viewer_api.get(LIST, {"search": f"#{target.pk}"})) == ["Login slow"]


@pytest.mark.parametrize(
    "query",
    ["severity=SEV7", "status=done", "open=maybe", "declared_after=tuesday", "ordering=password"],
)
def test_list_bad_filter_is_400_with_field(viewer_api, query):
    response = viewer_api.get(f"{LIST}?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()["errors"]


def test_list_paginates_50_by_default_and_caps_page_size(viewer_api, db):
    IncidentFactory.create_batch(205)
    first = viewer_api.get(LIST).json()
    assert first["count"] == 205
    assert len(first["results"]) == 50
    assert first["next"].endswith("?page=2")
    assert first["previous"] is None
    small = viewer_api.get(LIST, {"page_size": 7, "page": 2}).json()
    assert len(small["results"]) == 7
    # Out-of-range sizes and pages that are not numbers are refused, never replaced.
    for bad in ({"page_size": 1000}, {"page_size": 0}, {"page_size": -1}, {"page": "abc"}):
        refused = viewer_api.get(LIST, bad)
        assert refused.status_code == 400, bad
        assert set(refused.json()["errors"]) == set(bad)
    ids = [r["id"] for r in viewer_api.get(LIST, {"page_size": 200}).json()["results"]]
    ids += [r["id"] for r in viewer_api.get(LIST, {"page_size": 200, "page": 2}).json()["results"]]
    assert len(set(ids)) == 205  # no row on two pages, none skipped
    past_the_end = viewer_api.get(LIST, {"page": 99})
    assert past_the_end.status_code == 404
    assert past_the_end.json()["detail"] == "There is no page 99: this list has 5 pages of 50."


def test_list_row_shows_commander_and_missing_roles(viewer_api, incident, commander):
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=commander)
    row = viewer_api.get(LIST).json()["results"][0]
    assert row["commander"] == {"id": commander.pk, "username": "commander"}
    assert [m["role"] for m in row["missing_roles"]] == [
        "technical_lead",
        "operations_lead",
        "communications_lead",
    ]


# --- fixed query counts -----------------------------------------------------------------------


def _staffed_incidents(n, people):
    for i in range(n):
        incident = services.incident_declare(
            title=f"Incident {i}", severity="SEV2", actor=people[i % len(people)]
        )
        services.role_assign(incident_id=incident.pk, role="incident_commander", user=people[0])
        services.role_assign(
            incident_id=incident.pk, role="technical_lead", user=people[i % len(people)]
        )
        services.role_assign(
            incident_id=incident.pk, role="other", role_name="Scribe", user=people[1]
        )


@pytest.fixture
def token_client(viewer):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(viewer)}")
    return client


# Token lookup (with its user and their groups), count, the page (role holders included).
LIST_QUERIES = 3
# Token lookup (user, groups), the incident (role holders included).
DETAIL_QUERIES = 2


@pytest.mark.parametrize("n", [5, 50])
def test_list_runs_a_fixed_number_of_queries(token_client, django_assert_num_queries, n):
    people = [UserFactory(username=f"sre{i}", role="responder") for i in range(4)]
    _staffed_incidents(n, people)
    with django_assert_num_queries(LIST_QUERIES):
        response = token_client.get(LIST, {"page_size": n})
    assert len(response.json()["results"]) == n
    assert all(row["commander"]["username"] == "sre0" for row in response.json()["results"])


@pytest.mark.parametrize("n", [5, 50])
def test_detail_runs_a_fixed_number_of_queries(token_client, django_assert_num_queries, n):
    people = [UserFactory(username=f"sre{i}", role="responder") for i in range(4)]
    _staffed_incidents(n, people)
    incident = Incident.objects.order_by("id").last()
    # More role history on this one must not cost more queries either.
    for person in people:
        services.role_assign(incident_id=incident.pk, role="operations_lead", user=person)
    with django_assert_num_queries(DETAIL_QUERIES):
        response = token_client.get(detail(incident.pk))
    assert len(response.json()["roles"]) == 4


# --- the direct renderings equal DRF's generic ones --------------------------------------------


@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris"])
def test_fast_renderings_match_drf_generic_rendering(settings, tz, commander, responder):
    from rest_framework import serializers as drf

    from incidents import selectors
    from incidents.api.serializers import (
        IncidentDetailOutputSerializer,
        IncidentListOutputSerializer,
    )

    settings.TIME_ZONE = tz
    incident = services.incident_declare(
        title="Mixed", severity="SEV1", actor=responder, users_affected_percent="7.5"
    )
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=commander)
    services.role_assign(incident_id=incident.pk, role="other", role_name="Scribe", user=responder)
    services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    bare = services.incident_declare(title="Bare", severity="SEV4")
    with timezone.override(tz):
        for pk in (incident.pk, bare.pk):
            row = selectors.incident_summary_list().get(pk=pk)
            fast = IncidentListOutputSerializer(row).data
            generic = drf.Serializer.to_representation(IncidentListOutputSerializer(), row)
            assert dict(fast) == dict(generic)
            full = selectors.incident_detail_get(incident_id=pk)
            fast = IncidentDetailOutputSerializer(full).data
            generic = drf.Serializer.to_representation(IncidentDetailOutputSerializer(), full)
            assert dict(fast) == json_roundtrip(generic)
            # The prefetching selector (used by other pages) renders the same.
            prefetched = selectors.incident_get(incident_id=pk)
            assert IncidentDetailOutputSerializer(prefetched).data == fast


def json_roundtrip(data):
    import json

    from rest_framework.utils.encoders import JSONEncoder

    return json.loads(json.dumps(data, cls=JSONEncoder))


def test_search_takes_wildcards_literally(viewer_api, db):
    IncidentFactory(title="Disk 100% full")
    IncidentFactory(title="Disk 1000 blocks full")
    IncidentFactory(title="slow_query log huge")
    IncidentFactory(title="slowXquery")
    assert titles(viewer_api.get(LIST, {"search": "100%"})) == ["Disk 100% full"]
    assert titles(viewer_api.get(LIST, {"search": "SLOW_QUERY"})) == ["slow_query log huge"]
