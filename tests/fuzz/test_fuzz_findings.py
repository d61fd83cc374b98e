"""Regression tests for what the API fuzz (tests/fuzz/test_api_fuzz.py) found, one per finding."""

import pytest
from django.test import Client
from drf_spectacular.generators import SchemaGenerator

from diagnostics.services import diagnostic_run_start
from tests.diagnostics.records import make_target
from tests.factories import UserFactory
from tests.fuzz.guard import OutboundRefused, confine_outbound_to_loopback


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def _responder_client():
    client = Client()
    client.force_login(UserFactory(role="responder"))
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/alerts/webhook/", "/api/v1/alerts/alertmanager/"])
def test_alert_webhook_with_a_multipart_body_is_refused_not_a_500(path):
    response = _responder_client().post(path, {"title": "disk full"})  # multipart/form-data
    assert response.status_code == 415


@pytest.mark.django_db
def test_form_body_stays_readable_after_the_nul_check():
    """The NUL middleware parses forms; request.body must still work for the view after it."""
    client = _responder_client()
    response = client.post(
        "/api/v1/alerts/webhook/", "a=1", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415


@pytest.mark.django_db
def test_api_path_matching_no_route_is_a_json_404(admin_api):
    response = admin_api.get("/api/v1/incidents/-1/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_web_path_matching_no_route_keeps_the_html_404(admin_user):
    client = Client()
    client.force_login(admin_user)
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_schema_declares_error_responses(openapi):
    operation = openapi["paths"]["/api/v1/comms/deliveries/{id}/retry/"]["post"]
    assert {"400", "401", "403", "404"} <= set(operation["responses"])
    listing = openapi["paths"]["/api/v1/incidents/"]["get"]
    assert {"400", "401", "403", "404"} <= set(listing["responses"])


@pytest.mark.parametrize(
    ("component", "field"),
    [
        ("DeliveryOut", "channel_name"),
        ("IncidentRunbookStep", "done_by"),
    ],
)
def test_schema_declares_nullable_read_only_fields(openapi, component, field):
    assert openapi["components"]["schemas"][component]["properties"][field]["nullable"] is True


@pytest.mark.django_db
def test_run_worst_status_is_null_before_any_result_and_the_schema_says_so(openapi, admin_api):
    # Queued, not executed: the task is sent on commit, which a test transaction never reaches.
    run = diagnostic_run_start(target_id=make_target().pk)
    assert admin_api.get(f"/api/v1/diagnostics/runs/{run.pk}/").json()["worst_status"] is None
    declared = openapi["components"]["schemas"]["RunDetail"]["properties"]["worst_status"]
    assert declared.get("nullable") is True


def test_integrity_lists_are_declared_as_the_pages_they_return(openapi):
    """They were bare arrays (declared so, once); now every list is a page, and says so."""
    for path in (
        "/api/v1/diagnostics/targets/{id}/integrity/checks/",
        "/api/v1/diagnostics/targets/{id}/integrity/runs/",
        "/api/v1/diagnostics/integrity/checks/{id}/results/",
    ):
        content = openapi["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
        ref = content["schema"]["$ref"].rsplit("/", 1)[-1]
        page = openapi["components"]["schemas"][ref]
        assert {"count", "next", "previous", "results"} <= set(page["properties"]), path
        assert page["properties"]["results"]["type"] == "array", path


def test_outbound_guard_refuses_and_records_non_loopback_only():
    import socket

    with confine_outbound_to_loopback() as record:
        with pytest.raises(OutboundRefused):
            socket.create_connection(("192.0.2.1", 5432), timeout=0.1)
        with pytest.raises(OutboundRefused):
            socket.getaddrinfo("example.invalid", 80)
        with pytest.raises(OSError):  # allowed, nothing listens: refused by the kernel
            socket.create_connection(("127.0.0.1", 1), timeout=0.5)
    assert record.refused == [
        ("socket.create_connection", "192.0.2.1:5432"),
        ("getaddrinfo", "example.invalid:80"),
    ]


def test_outbound_guard_refuses_libpq_connections_off_the_machine():
    import psycopg

    with confine_outbound_to_loopback() as record, pytest.raises(OutboundRefused):
        psycopg.Connection.connect("host=db.example.com port=5432 connect_timeout=1")
    assert record.refused == [("libpq", "db.example.com:5432")]
