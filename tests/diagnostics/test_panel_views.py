"""The incident page's diagnostics panel and the run page (htmx partials, CSRF, roles)."""

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory

from diagnostics import services
from diagnostics.models import DiagnosticRun, IncidentTarget
from incidents.services import incident_declare
from tests.diagnostics.d2_fixtures import TEST_KEYS

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _client(user, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def incident(responder):
    return incident_declare(title="Checkout slow", severity="SEV2", actor=responder)


def test_shell_template_loads_the_partial_with_htmx_and_carries_the_csrf_token(incident, responder):
    request = RequestFactory().get("/")
    request.user = responder
    html = render_to_string(
        "diagnostics/incident_panel.html",
        {"incident": incident, "request": request, "user": responder},
        request=request,
    )
    assert f'hx-get="/incidents/{incident.pk}/diagnostics/"' in html
    assert 'hx-trigger="load"' in html
    assert "X-CSRFToken" in html and "htmx-2.min.js" in html


def test_panel_needs_login(incident):
    response = Client().get(f"/incidents/{incident.pk}/diagnostics/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_panel_lists_targets_runs_and_findings_and_polls_while_active(
    incident, responder, live_target, test_checks, markers, sent_runs
):
    services.incident_target_add(incident_id=incident.pk, target_id=live_target.pk, actor=responder)
    client = _client(responder)
    html = client.get(f"/incidents/{incident.pk}/diagnostics/", **HTMX).content.decode()
    assert live_target.name in html and 'hx-trigger="every 2s"' in html
    assert "queued" in html.lower()
    markers.set("stale-lock")
    run = DiagnosticRun.objects.get(incident=incident)
    services.diagnostic_run_execute(run_id=run.pk)
    html = client.get(f"/incidents/{incident.pk}/diagnostics/", **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' not in html
    assert "Test markers" in html and "1 marker(s)" in html and "stale-lock" in html
    assert f"/diagnostics/runs/{run.pk}/" in html


def test_run_button_posts_with_csrf_and_starts_runs(
    incident, responder, live_target, sent_runs, django_capture_on_commit_callbacks
):
    services.incident_target_add(
        incident_id=incident.pk, target_id=live_target.pk, actor=responder, start_run=False
    )
    client = _client(responder, csrf=True)
    url = f"/incidents/{incident.pk}/diagnostics/run/"
    assert client.post(url, **HTMX).status_code == 403  # no CSRF token
    page = client.get(f"/incidents/{incident.pk}/diagnostics/", **HTMX)
    token = page.cookies["csrftoken"].value if "csrftoken" in page.cookies else None
    html = page.content.decode()
    assert "Run diagnostics" in html and 'name="csrfmiddlewaretoken"' in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            url, HTTP_X_CSRFTOKEN=token or client.cookies["csrftoken"].value, **HTMX
        )
    assert response.status_code == 200
    run = DiagnosticRun.objects.get(incident=incident)
    assert run.trigger == "manual" and run.requested_by.username == "responder"
    assert sent_runs == [[run.pk]]
    assert 'hx-trigger="every 2s"' in response.content.decode()


def test_viewers_see_the_panel_but_cannot_run_or_link(incident, viewer, live_target):
    client = _client(viewer)
    html = client.get(f"/incidents/{incident.pk}/diagnostics/", **HTMX).content.decode()
    assert "Run diagnostics" not in html and "Affected database" not in html
    assert client.post(f"/incidents/{incident.pk}/diagnostics/run/").status_code == 403
    response = client.post(
        f"/incidents/{incident.pk}/diagnostics/targets/", {"target": live_target.pk}
    )
    assert response.status_code == 403
    assert not IncidentTarget.objects.exists()


def test_adding_a_target_from_the_panel_links_it_and_starts_a_run(
    incident, responder, live_target, sent_runs
):
    client = _client(responder)
    response = client.post(
        f"/incidents/{incident.pk}/diagnostics/targets/", {"target": live_target.pk}, **HTMX
    )
    assert response.status_code == 200
    assert IncidentTarget.objects.filter(incident=incident, target=live_target).exists()
    assert DiagnosticRun.objects.filter(incident=incident, trigger="incident").exists()
    bad = client.post(f"/incidents/{incident.pk}/diagnostics/targets/", {"target": "x"}, **HTMX)
    assert bad.status_code == 400 and "Choose a target" in bad.content.decode()


def test_run_page_shows_results_and_compares_two_runs(
    responder, live_target, test_checks, markers, sent_runs
):
    markers.set("a")
    first = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=first.pk)
    markers.set("b")
    second = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=second.pk)
    client = _client(responder)
    html = client.get(f"/diagnostics/runs/{second.pk}/?compare={first.pk}").content.decode()
    assert f"Diagnostic run #{second.pk}" in html
    assert "1 finding(s) appeared, 1 cleared" in html
    assert "xact_commit" in html and "/s" in html
    assert client.get("/diagnostics/runs/999999/").status_code == 404


def test_databases_page_lists_targets_with_their_latest_run(viewer, live_target, test_checks):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": TEST_KEYS})
    services.diagnostic_run_execute(run_id=run.pk)
    html = _client(viewer).get("/diagnostics/").content.decode()
    assert live_target.name in html and f"/diagnostics/runs/{run.pk}/" in html
    # A run that found nothing wrong reads as healthy, never as a grey status word.
    assert "healthy" in html
    assert "Run diagnostics" not in html and "Test connection" not in html  # viewer


def test_responder_tests_a_connection_and_runs_diagnostics_from_the_databases_page(
    responder, viewer, live_target, sent_runs, django_capture_on_commit_callbacks
):
    client = _client(responder)
    page = client.post(f"/diagnostics/targets/{live_target.pk}/test-connection/", follow=True)
    html = page.content.decode()
    assert "Test connection: orders-primary" in html and "Reachable in" in html
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/diagnostics/targets/{live_target.pk}/run/")
    run = DiagnosticRun.objects.get(target=live_target)
    assert response.status_code == 302 and response["Location"] == f"/diagnostics/runs/{run.pk}/"
    assert sent_runs == [[run.pk]]
    viewer_client = _client(viewer)
    assert viewer_client.post(f"/diagnostics/targets/{live_target.pk}/run/").status_code == 403
    response = viewer_client.post(f"/diagnostics/targets/{live_target.pk}/test-connection/")
    assert response.status_code == 403
