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


def test_incremental_sync_with_updated_after(admin_api):
    import datetime

    from django.utils import timezone

    from comms.models import StatusUpdate
    from diagnostics.models import DiagnosticRun
    from incidents.models import Incident
    from tests.factories import DiagnosticRunFactory

    old, recent = IncidentFactory(), IncidentFactory()
    an_hour_ago = timezone.now() - datetime.timedelta(hours=1)
    Incident.objects.filter(pk=old.pk).update(updated_at=an_hour_ago)
    since = (timezone.now() - datetime.timedelta(minutes=5)).isoformat()

    changed = admin_api.get(
        "/api/v1/incidents/", {"updated_after": since, "ordering": "updated_at"}
    ).json()
    assert [i["id"] for i in changed["results"]] == [recent.pk]
    earlier = admin_api.get("/api/v1/incidents/", {"updated_before": since}).json()
    assert [i["id"] for i in earlier["results"]] == [old.pk]

    # The timeline: events recorded since (a backdated event is recorded now, so not missed).
    note = admin_api.post(
        f"/api/v1/incidents/{old.pk}/timeline/",
        {"message": "Replica lag back to 0", "occurred_at": an_hour_ago.isoformat()},
        format="json",
    )
    assert note.status_code == 201, note.content
    events = admin_api.get(
        f"/api/v1/incidents/{old.pk}/timeline/", {"updated_after": since}
    ).json()["results"]
    assert [e["message"] for e in events] == ["Replica lag back to 0"]

    # Runs: the ones changed since, whatever their queue time.
    run = DiagnosticRunFactory(queued_at=an_hour_ago)
    DiagnosticRun.objects.filter(pk=run.pk).update(updated_at=timezone.now())
    stale = DiagnosticRunFactory(queued_at=an_hour_ago)
    DiagnosticRun.objects.filter(pk=stale.pk).update(updated_at=an_hour_ago)
    runs = admin_api.get("/api/v1/diagnostics/runs/", {"updated_after": since}).json()
    assert [r["id"] for r in runs["results"]] == [run.pk]

    # Comms updates, with page_size honoured.
    for n in range(3):
        created = admin_api.post(
            f"/api/v1/comms/incidents/{old.pk}/updates/",
            {"audience": "internal", "subject": f"Update {n}", "body": "Still looking."},
            format="json",
        )
        assert created.status_code == 201, created.content
    StatusUpdate.objects.filter(subject="Update 0").update(updated_at=an_hour_ago)
    updates = admin_api.get(
        f"/api/v1/comms/incidents/{old.pk}/updates/", {"updated_after": since, "page_size": 1}
    ).json()
    assert updates["count"] == 2 and len(updates["results"]) == 1

    for url in (
        "/api/v1/incidents/",
        f"/api/v1/incidents/{old.pk}/timeline/",
        "/api/v1/diagnostics/runs/",
        f"/api/v1/comms/incidents/{old.pk}/updates/",
    ):
        body = _error(admin_api.get(url, {"updated_after": "yesterday"}), 400, "invalid")
        assert list(body["errors"]) == ["updated_after"], url


@pytest.mark.parametrize(
    "url, parameter",
    [
        ("/api/v1/incidents/", "declared_after"),
        ("/api/v1/incidents/", "updated_before"),
        ("/api/v1/diagnostics/runs/", "queued_before"),
        ("/api/v1/diagnostics/runs/", "updated_after"),
        ("/api/v1/comms/incidents/{incident}/updates/", "updated_after"),
        ("/api/v1/incidents/{incident}/timeline/", "after"),
    ],
)
def test_instant_filters_take_any_iso_offset(admin_api, url, parameter):
    """PostgreSQL refuses offsets past ±15:59 that Python reads (a DataError, a 500, found by
    the fuzzer); filters convert to UTC first. Only an instant that leaves the calendar in UTC
    is refused, as a 400 naming the parameter."""
    from tests.factories import DiagnosticRunFactory

    incident = IncidentFactory()
    DiagnosticRunFactory()
    url = url.format(incident=incident.pk)
    far_east = admin_api.get(url, {parameter: "2000-01-01T00:00:00+16:00"})
    assert far_east.status_code == 200, far_east.content
    beyond = _error(admin_api.get(url, {parameter: "0001-01-01T00:00:00+16:00"}), 400, "invalid")
    assert list(beyond["errors"]) == [parameter]


def test_url_fields_are_absolute(viewer_api):
    from django.utils import timezone

    from postmortems import services

    resolved = IncidentFactory(status="resolved", resolved_at=timezone.now())
    postmortem = services.postmortem_create(incident_id=resolved.pk)
    [row] = viewer_api.get("/api/v1/postmortems/").json()["results"]
    assert row["url"] == f"http://testserver/postmortems/{postmortem.pk}/"
    detail = viewer_api.get(f"/api/v1/postmortems/{postmortem.pk}/").json()
    assert detail["url"].startswith("http")
