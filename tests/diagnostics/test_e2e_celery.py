"""End to end: a real Celery worker (subprocess) against Redis runs a suite through the API.

The worker uses the same settings, the pytest test database (transaction=True, so the rows are
committed and visible to it) and the broker from settings (REDIS_URL: db 0 in CI, another
number per developer). A queue of its own keeps any other worker from taking the task.
"""

from __future__ import annotations

import time

import pytest
from rest_framework.test import APIClient

from diagnostics.checks import registry
from diagnostics.models import CheckResult
from incidents.models import EventKind, TimelineEvent
from incidents.services import incident_declare
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_real_worker_runs_the_suite_triggered_through_the_api(worker, target_dbname, responder):
    target = make_target(name="e2e-target", database=target_dbname)
    incident = incident_declare(title="E2E: checkout slow", severity="SEV2", actor=responder)
    client = APIClient()
    client.force_authenticate(responder)

    response = client.post(
        f"/api/v1/diagnostics/targets/{target.pk}/runs/",
        {"incident": incident.pk},
        format="json",
    )
    assert response.status_code == 202, response.content
    run_url = response["Location"]

    deadline = time.monotonic() + 60
    body = client.get(run_url).json()
    while body["status"] in ("queued", "running"):
        if time.monotonic() > deadline:
            pytest.fail(f"run still {body['status']}; worker log:\n{worker['log'].read_text()}")
        time.sleep(0.25)
        body = client.get(run_url).json()

    assert body["status"] == "succeeded", body
    assert body["celery_task_id"] and body["started_at"] and body["finished_at"]
    expected = set(registry.keys())
    stored = set(CheckResult.objects.filter(run_id=body["id"]).values_list("key", flat=True))
    assert stored == expected
    assert {r["key"] for r in body["results"]} == expected
    connection_result = next(r for r in body["results"] if r["key"] == "connection")
    assert connection_result["status"] in ("ok", "warning")
    event = TimelineEvent.objects.get(incident=incident, kind=EventKind.DIAGNOSTIC_RUN)
    assert event.data["run_id"] == body["id"]
    assert event.data["worst_status"] == body["worst_status"]
    assert f"/diagnostics/runs/{body['id']}/" in event.message
    assert (
        f"Task diagnostics.run_diagnostics[{body['celery_task_id']}]" in worker["log"].read_text()
    )
