"""Every page renders for the people who may see it, and only for them."""

import pytest
from django.urls import reverse

from incidents import services
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_anonymous_visitor_is_sent_to_the_login_page(client, incident):
    for url in (
        reverse("incidents:list"),
        reverse("incidents:detail", args=[incident.pk]),
        reverse("incidents:declare"),
        reverse("incidents:metrics-dashboard"),
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/accounts/login/?next=")


def test_login_page_renders_and_signs_in(client, responder):
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert b'name="username"' in page.content
    response = client.post(
        "/accounts/login/", {"username": "responder", "password": "pw-for-tests"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_login_with_a_wrong_password_keeps_the_username(client, responder):
    response = client.post("/accounts/login/", {"username": "responder", "password": "nope"})
    assert response.status_code == 200
    assert b'value="responder"' in response.content
    assert b"do not match" in response.content


def test_logout_is_a_post(responder_client):
    assert responder_client.get("/accounts/logout/").status_code == 405
    response = responder_client.post("/accounts/logout/")
    assert response.status_code == 302
    assert responder_client.get("/").status_code == 302


def test_user_without_any_group_is_refused(client, incident):
    client.force_login(UserFactory(username="nobody"))
    assert client.get(reverse("incidents:list")).status_code == 403
    assert client.get(reverse("incidents:detail", args=[incident.pk])).status_code == 403


def test_viewer_sees_every_read_page(viewer_client, incident):
    for url in (
        reverse("incidents:list"),
        reverse("incidents:detail", args=[incident.pk]),
        reverse("incidents:timeline", args=[incident.pk]),
        reverse("incidents:metrics-dashboard"),
    ):
        response = viewer_client.get(url)
        assert response.status_code == 200, url


def test_incidents_path_redirects_to_the_list_keeping_filters(viewer_client):
    response = viewer_client.get("/incidents/?severity=SEV1")
    assert response.status_code == 302
    assert response["Location"] == "/?severity=SEV1"


def test_base_layout_is_accessible(viewer_client):
    html = viewer_client.get("/").content.decode()
    assert '<html lang="en">' in html
    assert 'class="skip-link" href="#main"' in html
    assert '<main id="main"' in html
    assert 'name="viewport"' in html
    assert "Keyboard shortcuts" in html
    # htmx is served from our own static files (whitenoise), never a CDN.
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "https://" not in html.split("<body")[0]


def test_incident_page_shows_summary_roles_status_and_timeline(commander_client, incident):
    html = commander_client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert "Checkout queries time out" in html
    assert incident.channel_name in html
    assert "Summary and assessment" in html
    assert "Missing:" in html and "Communications Lead" in html
    assert 'id="timeline"' in html and "Incident declared as SEV2" in html
    assert 'hx-trigger="every 5s"' in html  # open incidents refresh their timeline
    for label in ("Cause identified", "Mitigated: monitoring", "Resolve"):
        assert label in html
    assert "Reopen" not in html and ">Close<" not in html


def test_unknown_incident_is_404(viewer_client):
    assert viewer_client.get(reverse("incidents:detail", args=[999999])).status_code == 404


def test_declare_page_shows_severity_definitions_beside_the_choice(responder_client):
    html = responder_client.get(reverse("incidents:declare")).content.decode()
    assert "Database completely unavailable or severe data corruption affecting all users" in html
    assert "Minimal database issues with negligible user impact" in html
    for field in ("title", "kind", "description", "detection_source", "detected_by", "scope"):
        assert f'name="{field}"' in html


def test_resolved_incident_stops_polling_and_offers_reopen(commander_client, commander, incident):
    services.incident_transition(incident_id=incident.pk, to_status="resolved", actor=commander)
    html = commander_client.get(reverse("incidents:detail", args=[incident.pk])).content.decode()
    assert 'hx-trigger="every' not in html
    assert "Reopen" in html
    # Closing belongs to the postmortem (published or waived), not to a bare button.
    assert ">Close<" not in html and "published or waived" in html


def test_refusals_and_missing_pages_use_the_site_layout(viewer_client):
    refused = viewer_client.get(reverse("incidents:declare"))
    assert refused.status_code == 403
    assert b"You cannot do this" in refused.content and b"responder role" in refused.content
    missing = viewer_client.get("/incidents/424242/")
    assert missing.status_code == 404
    assert b"Back to incidents" in missing.content
