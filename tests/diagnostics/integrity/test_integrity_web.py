"""The incident page's data integrity panel (htmx, login, CSRF, roles), the run and target
pages, and the admin (validation with field errors, the run action, read-only runs)."""

import html as html_lib
import re

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory

from diagnostics.integrity import services as integrity
from diagnostics.integrity.models import IntegrityCheck, IntegrityRun
from diagnostics.models import IncidentTarget
from incidents.services import incident_declare
from tests.diagnostics.integrity.integrity_support import shop_sql

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _client(user, csrf=False):
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def incident(responder, shop_target):
    incident = incident_declare(title="Profiles lost their users", severity="SEV2", actor=responder)
    IncidentTarget.objects.create(incident=incident, target=shop_target)
    return incident


@pytest.fixture
def sent(monkeypatch):
    ids = []
    monkeypatch.setattr(integrity, "_enqueue", lambda run_id, task_id: ids.append(run_id))
    return ids


def test_shell_loads_the_partial_with_htmx_and_the_csrf_token(incident, responder):
    request = RequestFactory().get("/")
    request.user = responder
    html = render_to_string(
        "integrity/panel.html",
        {"incident": incident, "request": request, "user": responder},
        request=request,
    )
    assert f'hx-get="/incidents/{incident.pk}/integrity/"' in html
    assert "X-CSRFToken" in html and "htmx-2.min.js" in html


def test_incident_page_includes_the_panel(incident, responder):
    html = _client(responder).get(f"/incidents/{incident.pk}/").content.decode()
    assert f'id="integrity-panel-{incident.pk}"' in html


def test_panel_needs_login_and_the_viewer_role(incident, db):
    response = Client().get(f"/incidents/{incident.pk}/integrity/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_baseline_and_verification_from_the_panel_show_the_difference(
    incident, responder, shop_db, shop_checks, sent, django_capture_on_commit_callbacks
):
    client = _client(responder, csrf=True)
    html = client.get(f"/incidents/{incident.pk}/integrity/", **HTMX).content.decode()
    assert "Run baseline" in html and "Run verification" in html
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
    # Without the CSRF token the post is refused.
    refused = client.post(f"/incidents/{incident.pk}/integrity/run/", {"purpose": "baseline"})
    assert refused.status_code == 403
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/incidents/{incident.pk}/integrity/run/",
            {"purpose": "baseline", "csrfmiddlewaretoken": token},
            **HTMX,
        )
    assert response.status_code == 200
    assert 'hx-trigger="every 2s"' in response.content.decode()  # polls while queued
    assert response["HX-Trigger"] == "incidentChanged"
    baseline = IntegrityRun.objects.get(incident=incident)
    assert sent == [baseline.pk] and baseline.purpose == "baseline"
    still = client.get(f"/incidents/{incident.pk}/integrity/?polled=1", **HTMX)
    assert "HX-Trigger" not in still  # nothing new for the page while the run is queued
    integrity.integrity_run_execute(run_id=baseline.pk)
    done = client.get(f"/incidents/{incident.pk}/integrity/?polled=1", **HTMX)
    assert done["HX-Trigger"] == "incidentChanged"  # the run's timeline event is there now
    html = client.get(f"/incidents/{incident.pk}/integrity/", **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' not in html
    assert "4 violations in 6 checks" in html and "run a verification" in html

    shop_sql(shop_db, "DELETE FROM profiles WHERE user_id >= 100")
    response = client.post(
        f"/incidents/{incident.pk}/integrity/run/",
        {"purpose": "verification", "csrfmiddlewaretoken": token},
        **HTMX,
    )
    verification = IntegrityRun.objects.get(incident=incident, purpose="verification")
    integrity.integrity_run_execute(run_id=verification.pk)
    html = client.get(f"/incidents/{incident.pk}/integrity/", **HTMX).content.decode()
    assert f"Baseline #{baseline.pk} → verification #{verification.pk}" in html
    row = re.search(r'<tr data-diff="orphaned profiles">(.*?)</tr>', html, re.S).group(1)
    assert "3" in row and "-3" in row and "fixed" in row

    page = html_lib.unescape(
        client.get(f"/diagnostics/integrity/runs/{verification.pk}/").content.decode()
    )
    assert "orphaned profiles 3 -> 0" in page and 'SELECT "profiles"."id"' in page
    assert "fixed" in page


def test_viewers_see_results_but_cannot_run(incident, viewer, shop_checks):
    client = _client(viewer)
    html = client.get(f"/incidents/{incident.pk}/integrity/", **HTMX).content.decode()
    assert "6 checks" in html and "Not run for this incident yet" in html
    assert "Run baseline" not in html
    response = client.post(f"/incidents/{incident.pk}/integrity/run/", {"purpose": "baseline"})
    assert response.status_code == 403
    assert not IntegrityRun.objects.exists()


def test_run_without_checks_says_so(incident, responder, sent):
    client = _client(responder)
    response = client.post(
        f"/incidents/{incident.pk}/integrity/run/", {"purpose": "baseline"}, **HTMX
    )
    assert response.status_code == 400
    assert "No affected target has enabled integrity checks" in response.content.decode()


def test_target_page_suggests_and_admins_create_checks(shop_target, responder, admin_user):
    html = (
        _client(responder)
        .get(f"/diagnostics/targets/{shop_target.pk}/integrity/?suggest=1")
        .content.decode()
    )
    assert "orphaned profiles (user_id -&gt; users)" in html
    assert 'name="name"' not in html  # responders see suggestions, admins create them
    client = _client(admin_user)
    response = client.post(
        f"/diagnostics/targets/{shop_target.pk}/integrity/suggestions/",
        {"name": ["orphaned profiles (user_id -> users)"]},
    )
    assert response.status_code == 302
    assert list(IntegrityCheck.objects.values_list("name", flat=True)) == [
        "orphaned profiles (user_id -> users)"
    ]
    responder_post = _client(responder).post(
        f"/diagnostics/targets/{shop_target.pk}/integrity/suggestions/", {"name": ["x"]}
    )
    assert responder_post.status_code == 403


def test_admin_validates_definitions_and_runs_checks(shop_target, shop_checks, admin_user, sent):
    client = _client(admin_user)
    add = "/admin/integrity/integritycheck/add/"
    form = {
        "target": shop_target.pk,
        "name": "bad rule",
        "kind": "business_rule",
        "severity": "high",
        "schema_name": "public",
        "table_name": "posts",
        "predicate": "true); DROP TABLE posts; --",
        "enabled": "on",
    }
    response = client.post(add, form)
    assert response.status_code == 200 and "Not valid SQL" in response.content.decode()
    form["predicate"] = "published AND title = ''"
    response = client.post(add, form)
    assert response.status_code == 302
    created = IntegrityCheck.objects.get(name="bad rule")
    assert created.created_by == admin_user
    response = client.post(
        "/admin/integrity/integritycheck/",
        {"action": "run_now", "_selected_action": [created.pk, shop_checks["users"].pk]},
    )
    assert response.status_code == 302
    run = IntegrityRun.objects.get()
    assert sorted(run.check_ids) == sorted([created.pk, shop_checks["users"].pk])
    integrity.integrity_run_execute(run_id=run.pk)
    page = client.get(f"/admin/integrity/integrityrun/{run.pk}/change/").content.decode()
    assert "bad rule" in page and "violation" in page


def test_databases_page_links_each_target_to_its_integrity_checks(shop_target, viewer):
    html = _client(viewer).get("/diagnostics/").content.decode()
    assert f'href="/diagnostics/targets/{shop_target.pk}/integrity/"' in html
