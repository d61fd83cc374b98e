"""Idempotency-Key on status updates: a retried draft is not drafted twice."""

import pytest

from comms.models import MessageTemplate, StatusUpdate

pytestmark = pytest.mark.django_db


def test_a_retried_update_replays_and_a_changed_one_is_refused(responder_api, incident_factory):
    incident = incident_factory(severity="SEV2")
    path = f"/api/v1/comms/incidents/{incident.pk}/updates/"
    template = MessageTemplate.objects.get(key="internal-update").pk
    body = {"template": template, "body": "Index added; latency back to normal."}
    first = responder_api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="upd-1")
    again = responder_api.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY="upd-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert first["Location"].endswith(f"/api/v1/comms/updates/{first.json()['id']}/")
    changed = responder_api.post(
        path, {**body, "body": "Something else"}, format="json", HTTP_IDEMPOTENCY_KEY="upd-1"
    )
    assert changed.status_code == 422
    assert StatusUpdate.objects.filter(incident=incident).count() == 1
