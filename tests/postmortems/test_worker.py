"""End to end with a real Celery worker (subprocess, Redis broker): closing an action item tied
to a diagnostic check queues the check; the worker runs it, then settles the item, which is done
only because the check passed."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import time
import uuid

import pytest
from celery import current_app
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from diagnostics.services import target_create
from incidents import services as incident_services
from incidents.groups import ensure_groups
from postmortems import services
from postmortems.models import ActionItem, ActionStatus
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    """`celery worker --pool=solo` on a private queue; its process group ends at teardown."""
    conf = current_app.conf
    queue = f"quell-pm-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    celery = ROOT / ".venv" / "bin" / "celery"
    cmd = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "-A", "config", "worker", "--pool=solo", "-l", "info", "-Q", queue,
             "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    saved = conf.task_default_queue, conf.task_always_eager
    conf.task_default_queue, conf.task_always_eager = queue, False
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield log
    finally:
        conf.task_default_queue, conf.task_always_eager = saved
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


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
