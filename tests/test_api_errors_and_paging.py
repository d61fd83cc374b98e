"""One error envelope on every API answer, and list parameters that are refused, not ignored
(issue 15, items 2 and 4)."""

import pytest
from rest_framework.test import APIClient

from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db

ENVELOPE = {"detail", "code", "errors"}


def _error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == ENVELOPE, body
    assert body["code"] == code and body["detail"]
    return body


def test_every_kind_of_error_has_the_envelope_and_a_stable_code(viewer_api, admin_api):
    body = _error(admin_api.post("/api/v1/incidents/", {}, format="json"), 400, "invalid")
    assert set(body["errors"]) == {"title", "severity"}
    assert body["errors"]["title"] == ["This field is required."]
    _error(APIClient().get("/api/v1/incidents/"), 401, "not_authenticated")
    bad_token = APIClient(HTTP_AUTHORIZATION="Token not-a-token")
    _error(bad_token.get("/api/v1/incidents/"), 401, "authentication_failed")
    denied = viewer_api.post("/api/v1/incidents/", {"title": "x", "severity": "SEV2"})
    assert _error(denied, 403, "permission_denied")["errors"] == {}
    _error(viewer_api.get("/api/v1/incidents/999999/"), 404, "not_found")
    _error(admin_api.delete("/api/v1/incidents/"), 405, "method_not_allowed")
    _error(
        admin_api.post("/api/v1/incidents/", "{not json", content_type="application/json"),
        400,
        "parse_error",
    )


def test_not_found_never_names_a_model(admin_api):
    body = _error(admin_api.get("/api/v1/comms/updates/999999/"), 404, "not_found")
    assert body["detail"] == "Not found."
    body = _error(admin_api.get("/api/v1/no-such-route/"), 404, "not_found")
    assert "/api/v1/docs/" in body["detail"]


def test_a_write_without_the_trailing_slash_is_a_404_naming_the_path(admin_api):
    response = admin_api.post("/api/v1/incidents", {"title": "x", "severity": "SEV3"})
    body = _error(response, 404, "not_found")
    assert "/api/v1/incidents/ (with the trailing slash)" in body["detail"]
    # A read too: an API client gets JSON, not a redirect.
    _error(admin_api.get("/api/v1/incidents"), 404, "not_found")


@pytest.mark.parametrize(
    "url, params",
    [
        ("/api/v1/incidents/", {"severty": "SEV1"}),
        ("/api/v1/postmortems/", {"stat": "draft"}),
        ("/api/v1/action-items/", {"overdu": "true"}),
        ("/api/v1/diagnostics/runs/", {"targett": "1"}),
    ],
)
def test_an_unknown_query_parameter_is_a_400_naming_it(viewer_api, url, params):
    IncidentFactory()
    body = _error(viewer_api.get(url, params), 400, "invalid")
    [name] = params
    assert list(body["errors"]) == [name]
    assert body["errors"][name][0].startswith("Unknown query parameter; this list takes: ")


@pytest.mark.parametrize(
    "url, params",
    [
        ("/api/v1/postmortems/", {"status": "nope"}),
        ("/api/v1/postmortems/", {"incident": "abc"}),
        ("/api/v1/reviews/", {"upcoming": "perhaps"}),
        ("/api/v1/action-items/", {"category": "astrology"}),
    ],
)
def test_a_bad_filter_value_is_a_400_on_every_list(viewer_api, url, params):
    body = _error(viewer_api.get(url, params), 400, "invalid")
    assert list(body["errors"]) == list(params)


def test_postmortem_lists_filter_by_their_parameters(viewer_api, responder):
    from django.utils import timezone

    from postmortems import services

    resolved = IncidentFactory(status="resolved", resolved_at=timezone.now(), severity="SEV2")
    postmortem = services.postmortem_create(incident_id=resolved.pk)
    listed = viewer_api.get("/api/v1/postmortems/", {"status": "draft", "severity": "SEV2"})
    assert [p["id"] for p in listed.json()["results"]] == [postmortem.pk]
    assert viewer_api.get("/api/v1/postmortems/", {"status": "published"}).json()["count"] == 0
