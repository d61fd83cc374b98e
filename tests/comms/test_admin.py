import pytest
from django.test import Client

from comms.models import Channel, Delivery, DeliveryState

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(admin_user):
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(
    "model", ["messagetemplate", "channel", "delivery", "statusupdate", "component", "subscriber"]
)
def test_admin_changelists_render(admin_client_, model):
    assert admin_client_.get(f"/admin/comms/{model}/").status_code == 200


def test_admin_never_shows_channel_secrets(admin_client_):
    channel = Channel.objects.create(
        name="hook", kind="webhook", url="https://h.example.com/secret-path", signing_secret="k3y"
    )
    html = admin_client_.get(f"/admin/comms/channel/{channel.pk}/change/").content.decode()
    assert "secret-path" not in html and "k3y" not in html
    # Saving with the secret fields blank keeps them.
    response = admin_client_.post(
        f"/admin/comms/channel/{channel.pk}/change/",
        {
            "name": "hook",
            "kind": "webhook",
            "audience": "internal",
            "severities": "[]",
            "url": "",
            "signing_secret": "",
            "recipients": "[]",
            "enabled": "on",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    channel.refresh_from_db()
    assert channel.url == "https://h.example.com/secret-path" and channel.signing_secret == "k3y"


def test_admin_retry_action_requeues_failed_deliveries(admin_client_):
    failed = Delivery.objects.create(
        kind="update",
        transport="email",
        recipients=["a@example.com"],
        destination="x",
        subject="s",
        body="b",
        state=DeliveryState.FAILED,
        attempts=6,
    )
    response = admin_client_.post(
        "/admin/comms/delivery/",
        {"action": "retry_failed", "_selected_action": [failed.pk]},
    )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert failed.state == DeliveryState.PENDING


def test_component_admin_records_state_history(admin_client_):
    from comms.models import Component, ComponentStateChange

    comp = Component.objects.create(name="API")
    response = admin_client_.post(
        f"/admin/comms/component/{comp.pk}/change/",
        {
            "name": "API",
            "description": "",
            "state": "degraded",
            "position": 1,
            "visible": "on",
            "changes-TOTAL_FORMS": "0",
            "changes-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert ComponentStateChange.objects.get(component=comp).state == "degraded"
    assert admin_client_.get(f"/admin/comms/component/{comp.pk}/change/").status_code == 200
