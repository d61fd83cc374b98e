"""C0 control characters: refused where text is typed, harmless where old data is rendered."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from django.test import Client

from comms import services, transports
from comms.models import MessageTemplate, StatusUpdate
from incidents.mail import mail_subject

pytestmark = pytest.mark.django_db

BAD = ["tab\x0bvertical", "escape\x1b[31mred", "back\x08space", "nul\x00"]


@pytest.mark.parametrize("text", BAD)
def test_the_api_refuses_control_characters_in_public_text(responder_api, commander_api, text):
    declare = responder_api.post(
        "/api/v1/incidents/", {"title": text, "severity": "SEV3"}, format="json"
    )
    assert declare.status_code == 400
    assert "title" in declare.json() or "detail" in declare.json()
    component = commander_api.post(
        "/api/v1/comms/components/", {"name": "Checkout", "description": text}, format="json"
    )
    assert component.status_code in (400, 403)


def test_tabs_and_line_breaks_stay_allowed(responder_api):
    ok = responder_api.post(
        "/api/v1/incidents/",
        {"title": "Checkout slow", "severity": "SEV3", "description": "a\tb\r\nc\n"},
        format="json",
    )
    assert ok.status_code == 201, ok.content


def test_a_published_update_body_with_a_control_character_is_refused(
    incident_factory, commander_api
):
    incident = incident_factory(severity="SEV2")
    template = MessageTemplate.objects.get(key="external-investigating")
    response = commander_api.post(
        f"/api/v1/comms/incidents/{incident.pk}/updates/",
        {"template": template.pk, "body": "We are \x1b[2J investigating", "publish": True},
        format="json",
    )
    assert response.status_code == 400
    assert "Control characters" in str(response.json())
    assert not StatusUpdate.objects.filter(incident=incident, body__contains="\x1b").exists()


def test_the_web_declare_form_shows_the_error_and_keeps_the_text(client, responder):
    client.force_login(responder)
    response = client.post(
        "/incidents/declare/", {"title": "Orders\x0b down", "severity": "SEV2", "kind": "other"}
    )
    body = response.content.decode()
    assert response.status_code in (200, 400)
    assert "Control characters" in body
    assert "Orders" in body


def test_the_feed_survives_stored_control_characters_and_serves_plain_text(
    incident_factory, commander
):
    incident = incident_factory(severity="SEV2")
    template = MessageTemplate.objects.get(key="external-investigating")
    services.update_create_and_publish(
        incident_id=incident.pk, template_id=template.pk, actor=commander
    )
    # Stored before the validator existed (straight into the table).
    StatusUpdate.objects.filter(incident=incident).update(
        body="Fixed \x0b soon \x1b <b>", subject="s"
    )
    from comms import status_cache

    status_cache.invalidate()
    response = Client().get("/status/feed.atom")
    assert response.status_code == 200
    root = ET.fromstring(response.content)  # noqa: S314  (our own output)
    ns = {"a": "http://www.w3.org/2005/Atom"}
    summary = root.find("a:entry/a:summary", ns)
    assert summary.get("type") == "text"
    assert summary.text == "Fixed  soon  <b>"


def test_mail_subjects_and_chat_text_drop_control_characters():
    assert mail_subject("Orders\x1b[31m down\x08") == "Orders[31m down"
    assert "\x1b" not in transports.slack_text("a\x1bb", "c\x0bd")
