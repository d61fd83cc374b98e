"""Remediation through the API and the incident page's panel: roles (403), input (400 with
field messages), the preview/confirm flow, the record and the timeline."""

from __future__ import annotations

import re

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from diagnostics.remediation.models import RemediationAction
from incidents.models import EventKind, TimelineEvent
from incidents.services import role_assign
from tests.diagnostics.remediation_support import APP_ROLE, IDLE_IN_TX, SLEEP
from tests.factories import UserFactory

pytestmark = pytest.mark.usefixtures("quick_confirmation")

PREVIEW = "/api/v1/diagnostics/remediations/preview/"
HTMX = {"HTTP_HX_REQUEST": "true"}


def _api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def _body(target, incident, **filters):
    return {
        "target": target.pk,
        "incident": incident.pk if incident else None,
        "kind": filters.pop("kind", "cancel"),
        "filters": filters or {"states": ["active"], "user": APP_ROLE},
    }


def test_preview_then_execute_through_the_api(
    server, scratch, plant, target, incident, commander_user
):
    sleeper = plant(SLEEP, wait="state = 'active'")
    api = _api(commander_user)
    response = api.post(PREVIEW, _body(target, incident), format="json")
    assert response.status_code == 201, response.json()
    preview = response.json()
    assert response["Location"] == preview["url"]
    row = next(r for r in preview["preview"] if r["pid"] == sleeper.pid)
    assert row["eligible"] and row["user"] == APP_ROLE and "pg_sleep" in row["query"]

    execute = api.post(
        f"/api/v1/diagnostics/remediations/{preview['id']}/execute/",
        {"confirmed": [{"pid": row["pid"], "backend_start": row["backend_start"]}]},
        format="json",
    )
    assert execute.status_code == 200, execute.json()
    body = execute.json()
    assert body["status"] == "done"
    assert [(r["pid"], r["outcome"]) for r in body["results"]] == [(sleeper.pid, "cancelled")]
    assert body["executed_by"] == commander_user.username

    listed = _api(UserFactory(role="viewer")).get(
        "/api/v1/diagnostics/remediations/", {"incident": incident.pk}
    )
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()["results"]] == [preview["id"]]
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.REMEDIATION).count() == 1
    detail = _api(UserFactory(role="viewer")).get(preview["url"])
    assert detail.status_code == 200 and detail.json()["results"] == body["results"]
    assert api.get("/api/v1/diagnostics/remediations/999999/").status_code == 404
    assert (
        api.post(
            "/api/v1/diagnostics/remediations/999999/execute/", {"confirmed": []}, format="json"
        ).status_code
        == 404
    )


def test_the_incident_commander_may_remediate_a_responder_may_not(plant, target, incident):
    plant(SLEEP, wait="state = 'active'")
    responder = UserFactory(role="responder")
    refused = _api(responder).post(PREVIEW, _body(target, incident), format="json")
    assert refused.status_code == 403
    assert "Incident Commander" in refused.json()["detail"]
    role_assign(incident_id=incident.pk, role="incident_commander", user=responder)
    allowed = _api(responder).post(PREVIEW, _body(target, incident), format="json")
    assert allowed.status_code == 201


def test_viewers_cannot_preview_or_execute(target, incident, db):
    viewer = _api(UserFactory(role="viewer"))
    assert viewer.post(PREVIEW, _body(target, incident), format="json").status_code == 403
    assert (
        viewer.post(
            "/api/v1/diagnostics/remediations/1/execute/", {"confirmed": []}, format="json"
        ).status_code
        == 403
    )
    assert APIClient().get("/api/v1/diagnostics/remediations/").status_code in (401, 403)


def test_outside_an_incident_only_admins_remediate(plant, target, commander_user, admin):
    plant(SLEEP, wait="state = 'active'")
    assert _api(commander_user).post(PREVIEW, _body(target, None), format="json").status_code == 403
    assert _api(admin).post(PREVIEW, _body(target, None), format="json").status_code == 201


def test_force_is_for_admins(target, incident, commander_user):
    body = {**_body(target, incident), "force": True}
    response = _api(commander_user).post(PREVIEW, body, format="json")
    assert response.status_code == 403
    assert "admin" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "explode"}, "kind"),
        ({"filters": {"states": ["sleeping"]}}, "filters"),
        ({"filters": {"pid": 0}}, "filters"),
        ({"filters": {}}, "filters"),
        ({"grace_s": 0, "kind": "cancel_then_terminate"}, "grace_s"),
        ({"target": 999999}, "target"),
        ({"database": "postgres"}, "database"),
    ],
)
def test_bad_preview_input_is_a_400_with_the_field(target, incident, commander_user, change, field):
    body = {**_body(target, incident), **change}
    response = _api(commander_user).post(PREVIEW, body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"]
    assert not RemediationAction.objects.filter(status="done").exists()


def test_remediation_off_is_a_400_on_target(target, incident, commander_user):
    target.remediation_allowed = False
    target.save()
    response = _api(commander_user).post(PREVIEW, _body(target, incident), format="json")
    assert response.status_code == 400
    assert "remediation_allowed" in response.json()["errors"]["target"][0]


def test_execute_refuses_pairs_that_were_not_previewed(plant, target, incident, commander_user):
    sleeper = plant(SLEEP, wait="state = 'active'")
    api = _api(commander_user)
    preview = api.post(PREVIEW, _body(target, incident), format="json").json()
    url = f"/api/v1/diagnostics/remediations/{preview['id']}/execute/"
    missing = api.post(url, {}, format="json")
    assert missing.status_code == 400 and "confirmed" in missing.json()["errors"]
    stranger = api.post(
        url,
        {"confirmed": [{"pid": sleeper.pid, "backend_start": "2020-01-01T00:00:00+00:00"}]},
        format="json",
    )
    assert stranger.status_code == 400
    assert "preview again" in stranger.json()["errors"]["confirmed"][0]
    assert RemediationAction.objects.get(pk=preview["id"]).status == "previewed"
    assert server_backend_alive(sleeper)


def server_backend_alive(holder) -> bool:
    rows = holder.cluster.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (holder.pid,), dbname=holder.dbname
    )
    return rows[0][0] == 1


# --- the panel -----------------------------------------------------------------------------


def _client(user, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


def test_panel_shell_loads_the_partial_with_htmx_and_csrf(incident, commander_user):
    request = RequestFactory().get("/")
    request.user = commander_user
    html = render_to_string(
        "remediation/remediation_panel.html",
        {"incident": incident, "request": request, "user": commander_user},
        request=request,
    )
    assert f'hx-get="/incidents/{incident.pk}/remediation/"' in html
    assert "X-CSRFToken" in html and "htmx-2.min.js" in html


def test_panel_needs_login(incident):
    response = Client().get(f"/incidents/{incident.pk}/remediation/")
    assert response.status_code == 302 and "login" in response["Location"]


def test_panel_offers_the_form_only_to_those_allowed(target, incident, commander_user):
    viewer_html = (
        _client(UserFactory(role="responder"))
        .get(f"/incidents/{incident.pk}/remediation/", **HTMX)
        .content.decode()
    )
    assert "Preview</button>" not in viewer_html
    assert "Only a commander" in viewer_html
    html = _client(commander_user).get(f"/incidents/{incident.pk}/remediation/", **HTMX)
    assert "Preview</button>" in html.content.decode()
    assert target.name in html.content.decode()
    assert "include superuser" not in html.content.decode()  # force is for admins


def test_panel_preview_confirm_and_results(
    server, scratch, plant, target, incident, commander_user
):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    client = _client(commander_user, csrf=True)
    page = client.get(f"/incidents/{incident.pk}/remediation/", **HTMX)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    form = {
        "csrfmiddlewaretoken": token,
        "target": target.pk,
        "kind": "terminate",
        "states": ["idle in transaction"],
        "user": APP_ROLE,
    }
    preview = client.post(f"/incidents/{incident.pk}/remediation/preview/", form, **HTMX)
    assert preview.status_code == 200
    html = preview.content.decode()
    assert f'value="{idle.pid}|' in html and "Confirm: terminate backend" in html
    action = RemediationAction.objects.get(incident=incident)
    pair = next(r for r in action.preview if r["pid"] == idle.pid)
    # Without the token the confirmation is refused.
    no_token = client.post(
        f"/incidents/{incident.pk}/remediation/{action.pk}/execute/",
        {"backend": f"{idle.pid}|{pair['backend_start']}"},
        **HTMX,
    )
    assert no_token.status_code == 403
    done = client.post(
        f"/incidents/{incident.pk}/remediation/{action.pk}/execute/",
        {"csrfmiddlewaretoken": token, "backend": f"{idle.pid}|{pair['backend_start']}"},
        **HTMX,
    )
    assert done.status_code == 200
    assert done["HX-Trigger"] == "incidentChanged"
    assert "terminated" in done.content.decode()
    assert not server_backend_alive(idle)


def test_panel_preview_errors_are_shown_with_a_400(target, incident, commander_user):
    response = _client(commander_user).post(
        f"/incidents/{incident.pk}/remediation/preview/",
        {"target": target.pk, "kind": "cancel"},
        **HTMX,
    )
    assert response.status_code == 400
    assert "at least one condition" in response.content.decode()


def test_panel_refuses_a_responder_with_403(target, incident):
    response = _client(UserFactory(role="responder")).post(
        f"/incidents/{incident.pk}/remediation/preview/",
        {"target": target.pk, "kind": "cancel", "states": ["active"]},
        **HTMX,
    )
    assert response.status_code == 403


def test_incident_page_includes_the_remediation_and_runbooks_panels(incident, commander_user):
    html = _client(commander_user).get(f"/incidents/{incident.pk}/").content.decode()
    assert f"remediation-panel-{incident.pk}" in html
    assert f"runbooks-panel-{incident.pk}" in html


def test_history_polls_while_an_escalation_waits(
    plant, target, incident, commander_user, django_capture_on_commit_callbacks
):
    from diagnostics.remediation import services as rs

    sleeper = plant(SLEEP, wait="state = 'active'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel_then_terminate",
        filters={"pid": sleeper.pid},
        actor=commander_user,
    )
    pair = next(r for r in action.preview if r["pid"] == sleeper.pid)
    with django_capture_on_commit_callbacks(execute=False):
        rs.remediation_execute(
            action_id=action.pk,
            confirmed=[{"pid": sleeper.pid, "backend_start": pair["backend_start"]}],
            actor=commander_user,
        )
    viewer = _client(UserFactory(role="viewer"))
    url = f"/incidents/{incident.pk}/remediation/history/"
    html = viewer.get(url, **HTMX).content.decode()
    assert 'hx-trigger="every 2s"' in html and "escalation_pending" in html
    rs.remediation_escalate(action_id=action.pk)
    html = viewer.get(url, **HTMX).content.decode()
    assert "every 2s" not in html and "After the grace period" in html
