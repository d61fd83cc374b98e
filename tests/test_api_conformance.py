"""The schema-conformance check (tests/conformance.py) is on in the API test modules and fails
on answers the schema does not describe."""

import pytest

from incidents import services as incident_services
from incidents.api import views as incident_views
from tests import conformance

pytestmark = pytest.mark.django_db

JSON = {"Content-Type": "application/json", "X-Request-ID": "r-1"}


@pytest.fixture
def incident(responder):
    return incident_services.incident_declare(
        title="Orders table locked", severity="SEV2", kind="availability", actor=responder
    )


def test_api_test_modules_check_every_answer(schema_conformance, viewer_api, incident):
    viewer_api.get("/api/v1/incidents/")
    viewer_api.get(f"/api/v1/incidents/{incident.pk}/")
    viewer_api.get("/api/v1/incidents/999999/")
    assert schema_conformance == [
        ("GET", "/api/v1/incidents/", 200),
        ("GET", f"/api/v1/incidents/{incident.pk}/", 200),
        ("GET", "/api/v1/incidents/999999/", 404),
    ]


def test_a_body_off_the_schema_fails_the_request_that_got_it(viewer_api, incident, monkeypatch):
    real = incident_views._detail

    def wrong(incident_id):
        return {**real(incident_id), "id": "not-a-number", "severity": "SEV9"}

    monkeypatch.setattr(incident_views, "_detail", wrong)
    with pytest.raises(conformance.NonConformingResponse, match="does not match the schema"):
        viewer_api.get(f"/api/v1/incidents/{incident.pk}/")


def test_undeclared_statuses_undocumented_operations_and_relative_locations_fail():
    body = b'{"detail": "x"}'
    with pytest.raises(conformance.NonConformingResponse, match="status not declared"):
        conformance.check("GET", "/api/v1/incidents/", "", 418, JSON, body)
    with pytest.raises(conformance.NonConformingResponse, match="no operation"):
        conformance.check("GET", "/api/v1/not-documented/", "", 200, JSON, b"{}")
    with pytest.raises(conformance.NonConformingResponse, match="no X-Request-ID"):
        conformance.check(
            "GET", "/api/v1/incidents/", "", 401, {"Content-Type": "application/json"}, body
        )
    # Unknown routes may answer 404.
    conformance.check("GET", "/api/v1/not-documented/", "", 404, JSON, body)
    with pytest.raises(conformance.NonConformingResponse, match="not absolute"):
        conformance.check(
            "POST",
            "/api/v1/incidents/",
            "",
            201,
            {**JSON, "Location": "/api/v1/incidents/1/"},
            b"{}",
        )


def test_the_schema_uses_any_of_and_declares_the_standard_headers():
    schema = conformance.served_schema()
    assert '"oneOf"' not in str(schema).replace("'", '"')
    tracker = schema["components"]["schemas"]["ActionItemOutput"]["properties"]["tracker_url"]
    assert len(tracker["anyOf"]) == 2
    created = schema["paths"]["/api/v1/incidents/"]["post"]["responses"]["201"]["headers"]
    assert {"Location", "X-Request-ID", "RateLimit-Remaining"} <= set(created)
    throttled = schema["paths"]["/api/v1/incidents/"]["get"]["responses"]["429"]["headers"]
    assert "Retry-After" in throttled
    detail = schema["paths"]["/api/v1/incidents/{incident_id}/"]["get"]
    assert "ETag" in detail["responses"]["200"]["headers"]
    assert "304" in detail["responses"]
    assert any(p["name"] == "If-None-Match" for p in detail["parameters"])
