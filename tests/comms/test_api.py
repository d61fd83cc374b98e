import pytest
from rest_framework.test import APIClient

from comms.models import Channel, Delivery, DeliveryState, MessageTemplate, StatusUpdate
from incidents import services as incident_services

pytestmark = pytest.mark.django_db


def tpl(key):
    return MessageTemplate.objects.get(key=key).pk


def test_api_requires_authentication(incident_factory):
    incident = incident_factory()
    client = APIClient()
    for url in (
        "/api/v1/comms/templates/",
        f"/api/v1/comms/incidents/{incident.pk}/updates/",
        "/api/v1/comms/deliveries/",
        "/api/v1/comms/components/",
    ):
        assert client.get(url).status_code in (401, 403)


def test_viewer_reads_but_cannot_write(viewer_api, incident_factory):
    incident = incident_factory()
    assert viewer_api.get("/api/v1/comms/templates/").status_code == 200
    assert viewer_api.get(f"/api/v1/comms/incidents/{incident.pk}/updates/").status_code == 200
    response = viewer_api.post(
        f"/api/v1/comms/incidents/{incident.pk}/updates/",
        {"template": tpl("internal-update")},
    )
    assert response.status_code == 403
    assert viewer_api.get("/api/v1/comms/channels/").status_code == 403
    assert viewer_api.get("/api/v1/comms/subscribers/").status_code == 403


def test_preview_then_draft_then_publish(responder_api, incident_factory):
    incident = incident_factory(severity="SEV2")
    preview = responder_api.post(
        f"/api/v1/comms/incidents/{incident.pk}/preview/", {"template": tpl("internal-update")}
    )
    assert preview.status_code == 200
    body = preview.json()
    assert "INCIDENT UPDATE" in body["body"]
    assert "[TO FILL: planned actions]" in body["unfilled_markers"]
    assert not StatusUpdate.objects.exists()  # preview saves nothing

    edited = body["body"].replace("[TO FILL: planned actions]", "Add the missing index")
    created = responder_api.post(
        f"/api/v1/comms/incidents/{incident.pk}/updates/",
        {"template": tpl("internal-update"), "body": edited},
    )
    assert created.status_code == 201, created.json()
    update_id = created.json()["id"]
    assert created.json()["state"] == "draft"
    patched = responder_api.patch(f"/api/v1/comms/updates/{update_id}/", {"subject": "Better"})
    assert patched.status_code == 200 and patched.json()["subject"] == "Better"
    published = responder_api.post(f"/api/v1/comms/updates/{update_id}/publish/")
    assert published.status_code == 200
    assert published.json()["state"] == "published"
    again = responder_api.post(f"/api/v1/comms/updates/{update_id}/publish/")
    assert again.status_code == 400


def test_external_publish_needs_commander_or_the_incidents_comms_lead(
    responder, responder_api, commander_api, commander, incident_factory
):
    incident = incident_factory(severity="SEV1")
    payload = {"template": tpl("external-investigating"), "publish": True}
    url = f"/api/v1/comms/incidents/{incident.pk}/updates/"
    assert responder_api.post(url, payload).status_code == 403
    incident_services.role_assign(
        incident_id=incident.pk, role="communications_lead", user=responder, actor=commander
    )
    assert responder_api.post(url, payload).status_code == 201
    assert commander_api.post(url, payload).status_code == 201


def test_external_publish_with_markers_is_a_400_with_the_field(commander_api, incident_factory):
    incident = incident_factory(severity="SEV1")
    response = commander_api.post(
        f"/api/v1/comms/incidents/{incident.pk}/updates/",
        {"template": tpl("external-identified"), "publish": True},
    )
    assert response.status_code == 400
    data = response.json()
    assert data["code"] == "unfilled_markers"
    assert "estimated time to restore service" in data["errors"]["body"][0]
    assert not StatusUpdate.objects.filter(state="published").exists()


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"template": 999999},
        {"audience": "everyone"},
        {"template": "abc"},
        {"audience": "internal", "subject": "", "body": "x"},
        {"audience": "internal", "subject": "s", "body": "b", "status": "closed"},
        {"template": "TEMPLATE", "component_states": {"1": "on fire"}},
    ],
)
def test_bad_update_input_is_a_400(responder_api, incident_factory, payload):
    incident = incident_factory()
    if payload.get("template") == "TEMPLATE":
        payload = {**payload, "template": tpl("external-investigating")}
    response = responder_api.post(f"/api/v1/comms/incidents/{incident.pk}/updates/", payload)
    assert response.status_code == 400, response.json()
    assert not StatusUpdate.objects.exists()


def test_unknown_incident_is_a_404(responder_api):
    assert (
        responder_api.post(
            "/api/v1/comms/incidents/999999/preview/", {"audience": "internal"}
        ).status_code
        == 404
    )


def test_channel_secrets_are_write_only(admin_api):
    response = admin_api.post(
        "/api/v1/comms/channels/",
        {
            "name": "hook",
            "kind": "webhook",
            "audience": "external",
            "url": "https://hooks.example.com/T000/secret-path",
            "signing_secret": "very-secret",
            "severities": ["SEV1", "SEV2"],
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    text = response.content.decode()
    assert "secret-path" not in text and "very-secret" not in text
    assert response.json()["has_url"] and response.json()["has_signing_secret"]
    pk = response.json()["id"]
    detail = admin_api.get(f"/api/v1/comms/channels/{pk}/").content.decode()
    listing = admin_api.get("/api/v1/comms/channels/").content.decode()
    assert "secret-path" not in detail + listing and "very-secret" not in detail + listing
    # A partial update keeps the stored secrets.
    admin_api.patch(f"/api/v1/comms/channels/{pk}/", {"enabled": False}, format="json")
    channel = Channel.objects.get(pk=pk)
    assert channel.signing_secret == "very-secret" and not channel.enabled
    bad = admin_api.post(
        "/api/v1/comms/channels/",
        {"name": "x", "kind": "webhook", "url": "http://h/", "severities": ["SEV9"]},
        format="json",
    )
    assert bad.status_code == 400 and "severities" in bad.json()["errors"]


def test_only_admins_configure_channels_and_templates(commander_api):
    assert (
        commander_api.post(
            "/api/v1/comms/channels/", {"name": "x", "kind": "slack"}, format="json"
        ).status_code
        == 403
    )
    assert (
        commander_api.patch(
            f"/api/v1/comms/templates/{tpl('internal-update')}/", {"body": "x"}, format="json"
        ).status_code
        == 403
    )


def test_admin_edits_template_with_validation(admin_api):
    pk = tpl("internal-update")
    bad = admin_api.patch(f"/api/v1/comms/templates/{pk}/", {"body": "{% if %}"}, format="json")
    assert bad.status_code == 400 and "body" in bad.json()["errors"]
    good = admin_api.patch(
        f"/api/v1/comms/templates/{pk}/", {"body": "Update on {{ title }}"}, format="json"
    )
    assert good.status_code == 200
    assert MessageTemplate.objects.get(pk=pk).body == "Update on {{ title }}"
    variables = admin_api.get("/api/v1/comms/templates/variables/").json()
    assert "next_update" in variables


def test_deliveries_list_and_retry(responder_api, viewer_api, incident_factory, receiver):
    incident = incident_factory()
    channel = Channel.objects.create(name="s", kind="slack", url=receiver.url)
    delivery = Delivery.objects.create(
        kind="update",
        transport="slack",
        incident=incident,
        channel=channel,
        destination="s",
        subject="x",
        body="y",
        state=DeliveryState.FAILED,
        attempts=6,
        error="HTTP 500",
    )
    listing = viewer_api.get(f"/api/v1/comms/deliveries/?incident={incident.pk}&state=failed")
    assert [d["id"] for d in listing.json()["results"]] == [delivery.pk]
    assert viewer_api.post(f"/api/v1/comms/deliveries/{delivery.pk}/retry/").status_code == 403
    response = responder_api.post(f"/api/v1/comms/deliveries/{delivery.pk}/retry/")
    assert response.status_code == 200 and response.json()["state"] == "pending"
    assert responder_api.post(f"/api/v1/comms/deliveries/{delivery.pk}/retry/").status_code == 400


def test_comms_status_endpoint_reports_overdue(viewer_api, incident_factory):
    import datetime

    from django.utils import timezone

    from incidents.models import Incident

    incident = incident_factory(severity="SEV1")
    Incident.objects.filter(pk=incident.pk).update(
        declared_at=timezone.now() - datetime.timedelta(minutes=30)
    )
    data = viewer_api.get(f"/api/v1/comms/incidents/{incident.pk}/status/").json()
    assert data["update_due"]["overdue"] is True
    assert data["update_due"]["reason"] == "first external update"


def test_components_admin_write_commander_state(admin_api, commander_api, responder_api):
    created = admin_api.post("/api/v1/comms/components/", {"name": "API"}, format="json")
    assert created.status_code == 201
    pk = created.json()["id"]
    assert (
        responder_api.post(
            f"/api/v1/comms/components/{pk}/state/", {"state": "degraded"}
        ).status_code
        == 403
    )
    response = commander_api.post(f"/api/v1/comms/components/{pk}/state/", {"state": "degraded"})
    assert response.status_code == 200 and response.json()["state"] == "degraded"
    bad = commander_api.post(f"/api/v1/comms/components/{pk}/state/", {"state": "meh"})
    assert bad.status_code == 400 and "state" in bad.json()["errors"]
    dup = admin_api.post("/api/v1/comms/components/", {"name": "API"}, format="json")
    assert dup.status_code == 400 and "name" in dup.json()["errors"]


def test_subscriber_emails_are_admin_only(admin_api, responder_api):
    from comms import services

    services.subscriber_subscribe(email="someone@example.com")
    assert responder_api.get("/api/v1/comms/subscribers/").status_code == 403
    data = admin_api.get("/api/v1/comms/subscribers/").json()
    assert data["results"][0]["email"] == "someone@example.com"
    deliveries = responder_api.get("/api/v1/comms/deliveries/").json()["results"]
    assert "someone@example.com" not in str(deliveries)


def test_openapi_schema_builds(admin_api):
    response = admin_api.get("/api/v1/schema/")
    assert response.status_code == 200
    assert b"/api/v1/comms/updates/{id}/publish/" in response.content


def test_admin_sends_a_test_message_through_a_channel(admin_api, viewer_api, receiver):
    from comms.tasks import delivery_send

    channel = Channel.objects.create(name="t", kind="slack", url=receiver.url)
    assert viewer_api.post(f"/api/v1/comms/channels/{channel.pk}/test/").status_code == 403
    response = admin_api.post(f"/api/v1/comms/channels/{channel.pk}/test/")
    assert response.status_code == 202 and response.json()["kind"] == "test"
    assert delivery_send(response.json()["id"]) == "delivered"
    assert "test of the 't' channel" in receiver.json_bodies()[0]["text"]
