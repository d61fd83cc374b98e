# ruff: noqa: F401, F811 (pytest fixtures imported from d2_fixtures)
"""End to end: a real Celery worker (subprocess) against Redis runs a suite through the API.

The worker uses the same settings, the pytest test database (transaction=True, so the rows are
committed and visible to it) and the broker from settings (REDIS_URL: db 0 in CI, another
number per developer). A queue of its own keeps any other worker from taking the task.
"""

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

from diagnostics.checks import registry
from diagnostics.models import CheckResult
from incidents.models import EventKind, TimelineEvent
from incidents.services import incident_declare
from tests.diagnostics.d2_fixtures import target_dbname
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = pathlib.Path(__file__).resolve().parents[2]
CELERY = ROOT / ".venv" / "bin" / "celery"


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path):
    """A real `celery worker --pool=solo` on a private queue; stopped at teardown."""
    queue = f"quell-e2e-{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "PYTHONUNBUFFERED": "1",
    }
    executable = str(CELERY) if CELERY.exists() else None
    cmd = [executable] if executable else [sys.executable, "-m", "celery"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                *cmd,
                "-A",
                "config",
                "worker",
                "--pool=solo",
                "-l",
                "info",
                "-Q",
                queue,
                "-n",
                f"{queue}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: teardown ends everything it started
        )
    conf = current_app.conf
    old_queue = conf.task_default_queue
    conf.task_default_queue = queue  # tasks sent by this test go to this worker only
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield {"proc": proc, "log": log, "queue": queue}
    finally:
        conf.task_default_queue = old_queue
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


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
