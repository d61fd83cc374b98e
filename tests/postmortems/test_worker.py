"""End to end with a real Celery worker (subprocess, Redis broker): closing an action item tied
to a diagnostic check queues the check; the worker runs it, then settles the item, which is done
only because the check passed."""

from __future__ import annotations

import time

import pytest
from django.db import connection
from rest_framework.test import APIClient

from diagnostics.services import target_create
from incidents import services as incident_services
from incidents.groups import ensure_groups
from postmortems import services
from postmortems.models import ActionItem, ActionStatus
from tests.celery_worker import celery_worker
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    """`celery worker --pool=solo` on a private queue; its process group ends at teardown."""
    with celery_worker(tmp_path, name="quell-pm") as running:
        yield running.log


def test_worker_runs_the_check_and_closes_the_gated_item(worker):
    ensure_groups()  # transactional tests start from empty tables
    lead = UserFactory(username="lead", role="commander")
    incident = incident_services.incident_declare(
        title="Invalid index after a failed CREATE INDEX CONCURRENTLY", severity="SEV3", actor=lead
    )
    incident_services.incident_transition(incident_id=incident.pk, to_status="resolved", actor=lead)
    postmortem = incident.postmortem
    db = connection.settings_dict
    target = target_create(
        name="orders-db",
        host=db["HOST"] or "127.0.0.1",
        port=int(db["PORT"] or 5432),
        database=db["NAME"],
        user=db["USER"],
        password=db["PASSWORD"] or "",
        sslmode="disable",
    )
    item = services.action_item_create(
        postmortem_id=postmortem.pk,
        title="Rebuild the invalid index",
        category="performance",
        check_target=target,
        check_key="invalid_indexes",
        actor=lead,
    )
    client = APIClient()
    client.force_authenticate(lead)
    response = client.post(f"/api/v1/action-items/{item.pk}/complete/")
    assert response.status_code == 202, response.content
    assert response.data["verification_status"] == "running"

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        item.refresh_from_db()
        if not item.is_verifying:
            break
        time.sleep(0.3)
    log = worker.read_text()
    assert item.status == ActionStatus.DONE, (item.verification_summary, log[-3000:])
    assert item.verification_status == "ok"
    assert item.completed_by == lead
    assert "postmortems.settle_action_item_verification" in log
    assert ActionItem.objects.get(pk=item.pk).verification_run.status == "succeeded"
