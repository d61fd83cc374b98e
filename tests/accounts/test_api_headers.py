"""Standard API headers: Location on 201, ETag with If-None-Match / If-Match, X-Request-ID
(echoed, generated, logged) and RateLimit-* from the throttles."""

import logging
import time

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config.api_headers import RequestIdLogFilter
from incidents import services as incident_services
from postmortems.services import postmortems as postmortem_services
from tests.factories import UserFactory, forget_throttle_counts, fresh_client_ip

pytestmark = pytest.mark.django_db


@pytest.fixture
def incident(responder):
    return incident_services.incident_declare(
        title="Orders table locked", severity="SEV2", kind="availability", actor=responder
    )


# --- Location ---------------------------------------------------------------------------------


def test_201s_carry_the_absolute_url_of_what_they_created(responder_api, admin_api, incident):
    declared = responder_api.post(
        "/api/v1/incidents/", {"title": "Lag", "severity": "SEV4"}, format="json"
    )
    assert declared.status_code == 201
    assert declared["Location"] == f"http://testserver/api/v1/incidents/{declared.json()['id']}/"
    assert responder_api.get(declared["Location"]).json() == declared.json()

    note = responder_api.post(
        f"/api/v1/incidents/{incident.pk}/timeline/", {"message": "looking"}, format="json"
    )
    assert note["Location"] == f"http://testserver/api/v1/incidents/{incident.pk}/timeline/"

    component = admin_api.post("/api/v1/comms/components/", {"name": "Checkout"}, format="json")
    assert component.status_code == 201, component.json()
    assert component["Location"] == (
        f"http://testserver/api/v1/comms/components/{component.json()['id']}/"
    )


# --- ETag -------------------------------------------------------------------------------------


def test_incident_detail_has_an_etag_and_if_none_match_gets_304(
    viewer_api, commander_api, incident
):
    path = f"/api/v1/incidents/{incident.pk}/"
    first = viewer_api.get(path)
    etag = first["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    again = viewer_api.get(path, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304 and again.content == b"" and again["ETag"] == etag
    assert viewer_api.get(path, HTTP_IF_NONE_MATCH=f'W/{etag}, "other"').status_code == 304
    # A change anyone can see changes the ETag.
    commander_api.post(path + "severity/", {"severity": "SEV1"}, format="json")
    changed = viewer_api.get(path, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200 and changed["ETag"] != etag


def test_if_match_on_incident_writes_refuses_a_stale_copy_with_412(
    commander_api, responder_api, incident
):
    path = f"/api/v1/incidents/{incident.pk}/"
    etag = responder_api.get(path)["ETag"]
    edited = responder_api.patch(
        path, {"title": "Orders locked"}, format="json", HTTP_IF_MATCH=etag
    )
    assert edited.status_code == 200
    new_etag = edited["ETag"]
    assert new_etag != etag and responder_api.get(path)["ETag"] == new_etag
    # The old copy is stale now: every guarded write refuses it and changes nothing.
    stale = [
        responder_api.patch(path, {"title": "x"}, format="json", HTTP_IF_MATCH=etag),
        commander_api.post(
            path + "transition/", {"status": "identified"}, format="json", HTTP_IF_MATCH=etag
        ),
        commander_api.post(
            path + "severity/", {"severity": "SEV1"}, format="json", HTTP_IF_MATCH=etag
        ),
    ]
    assert [r.status_code for r in stale] == [412, 412, 412]
    assert "If-Match" in stale[0].json()["detail"]
    incident.refresh_from_db()
    assert (incident.title, incident.status, incident.severity) == (
        "Orders locked",
        "investigating",
        "SEV2",
    )
    moved = commander_api.post(
        path + "transition/", {"status": "identified"}, format="json", HTTP_IF_MATCH=new_etag
    )
    assert moved.status_code == 200 and moved.json()["status"] == "identified"


def test_postmortem_detail_etag_and_if_match(responder_api, responder, incident, settings):
    settings.QUELL_CLOSE_GUARDS = []
    incident_services.incident_transition(
        incident_id=incident.pk, to_status="resolved", actor=responder, reason="fixed"
    )
    postmortem = postmortem_services.postmortem_create(incident_id=incident.pk, actor=responder)
    path = f"/api/v1/postmortems/{postmortem.pk}/"
    read = responder_api.get(path)
    etag, version = read["ETag"], read.json()["version"]
    assert responder_api.get(path, HTTP_IF_NONE_MATCH=etag).status_code == 304
    saved = responder_api.patch(
        path, {"version": version, "summary": "Lock"}, format="json", HTTP_IF_MATCH=etag
    )
    assert saved.status_code == 200 and saved["ETag"] != etag
    # `version` alone would merge this edit of another field; If-Match refuses it.
    refused = responder_api.patch(
        path, {"version": version, "impact": "Orders"}, format="json", HTTP_IF_MATCH=etag
    )
    assert refused.status_code == 412


# --- X-Request-ID -----------------------------------------------------------------------------


def test_a_valid_request_id_is_echoed_and_a_missing_or_unsafe_one_replaced(viewer_api):
    sent = viewer_api.get("/api/v1/incidents/", HTTP_X_REQUEST_ID="tool-42.retry:1")
    assert sent["X-Request-ID"] == "tool-42.retry:1"
    generated = viewer_api.get("/api/v1/incidents/")["X-Request-ID"]
    assert len(generated) == 32
    for unsafe in ["a" * 129, "evil\r\nSet-Cookie: x", "<script>", "spa ce"]:
        answer = viewer_api.get("/api/v1/incidents/", HTTP_X_REQUEST_ID=unsafe)["X-Request-ID"]
        assert answer != unsafe and len(answer) == 32
    # Pages and anonymous refusals carry one too.
    assert Client().get("/accounts/login/")["X-Request-ID"]
    assert APIClient().get("/api/v1/incidents/")["X-Request-ID"]


def test_log_records_carry_the_request_id(viewer_api, caplog):
    caplog.handler.addFilter(RequestIdLogFilter())
    with caplog.at_level(logging.WARNING, logger="django.request"):
        viewer_api.get("/api/v1/incidents/999999/", HTTP_X_REQUEST_ID="trace-me-1")
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records and records[-1].request_id == "trace-me-1"
    outside = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    RequestIdLogFilter().filter(outside)
    assert outside.request_id == "-"


# --- RateLimit-* ------------------------------------------------------------------------------


def test_throttled_responses_carry_ratelimit_headers_and_429_retry_after(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "50/minute", "user": "3/minute", "alerts": "2/minute"},
    }
    user = UserFactory(username="counted", role="viewer")
    forget_throttle_counts(user)
    if 60 - time.time() % 60 < 2:  # the four requests must fall in one minute's window
        time.sleep(2)
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.force_authenticate(user)
    answers = [client.get("/api/v1/incidents/") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [a["RateLimit-Limit"] for a in answers] == ["3"] * 4
    assert [a["RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
    assert all(0 < int(a["RateLimit-Reset"]) <= 60 for a in answers)
    assert 0 < int(answers[3]["Retry-After"]) <= 60
    assert "Retry-After" not in answers[0]
