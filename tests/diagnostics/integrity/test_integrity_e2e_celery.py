"""End to end: a real Celery worker (subprocess, its own queue) runs an integrity baseline
started through the API, against the planted database; the incident's timeline records it."""

import time

import pytest
from rest_framework.test import APIClient

from diagnostics.models import IncidentTarget
from incidents.models import EventKind, TimelineEvent
from incidents.services import incident_declare

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_the_baseline(worker, shop_target, shop_checks, responder):
    incident = incident_declare(title="E2E: orphaned profiles", severity="SEV2", actor=responder)
    IncidentTarget.objects.create(incident=incident, target=shop_target)
    client = APIClient()
    client.force_authenticate(responder)
    response = client.post(
        f"/api/v1/diagnostics/targets/{shop_target.pk}/integrity/runs/",
        {"purpose": "baseline", "incident": incident.pk},
        format="json",
    )
    assert response.status_code == 202, response.content
    deadline = time.monotonic() + 60
    body = client.get(response["Location"]).json()
    while body["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            pytest.fail(f"run still {body['status']}:\n{worker['log'].read_text()[-3000:]}")
        time.sleep(0.25)
        body = client.get(response["Location"]).json()
    assert body["status"] == "succeeded", body
    counts = {r["check_name"]: r["count"] for r in body["results"]}
    assert counts["orphaned profiles"] == 3 and counts["duplicate emails"] == 2
    assert "diagnostics.run_integrity" in worker["log"].read_text()
    event = TimelineEvent.objects.get(incident=incident, kind=EventKind.INTEGRITY)
    assert event.data["integrity_run_id"] == body["id"] and event.data["violations"] == 4
    assert f"/diagnostics/integrity/runs/{body['id']}/" in event.message
