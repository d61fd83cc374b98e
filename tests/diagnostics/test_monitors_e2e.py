"""End to end: a real Celery worker runs a monitor's run and its evaluation (the run task's
hook), and the breach becomes an incident.

The worker consumes a private queue (the runs this test sends) and the default queue of this
test's broker database (REDIS_URL: a number per developer), where the worker's own follow-up
tasks (the evaluation, the run at detection) go.
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
import redis
from celery import current_app
from django.core.cache import cache
from django.db import connection

from diagnostics import monitors
from diagnostics.models import DiagnosticRun, IncidentTarget
from incidents.models import EventKind, Incident, TimelineEvent
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def worker(tmp_path, settings):
    """`celery worker --pool=solo` on a private queue plus the default one; stopped at teardown."""
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    queue = f"quell-monitor-e2e-{uuid.uuid4().hex[:8]}"
    default = current_app.conf.task_default_queue or "celery"
    # Left-overs of earlier runs on this broker database must not reach this worker.
    redis.Redis.from_url(settings.CELERY_BROKER_URL).delete(default)
    log = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "REDIS_URL": settings.REDIS_URL,
        "QUELL_COMMS_NOTIFY_ON_DECLARE": "false",
        "PYTHONUNBUFFERED": "1",
    }
    celery = ROOT / ".venv" / "bin" / "celery"
    cmd = [str(celery)] if celery.exists() else [sys.executable, "-m", "celery"]
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
                f"{queue},{default}",
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
    conf.task_default_queue = queue
    try:
        deadline = time.monotonic() + 60
        while b" ready." not in log.read_bytes():
            if proc.poll() is not None:
                pytest.fail(f"celery worker exited early:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"celery worker not ready in 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield {"proc": proc, "log": log}
    finally:
        conf.task_default_queue = old_queue
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def test_real_worker_runs_monitor_and_opens_availability_incident(worker, closed_port):
    cache.clear()
    host, port = closed_port
    down = make_target(name="e2e-down", host=host, port=port, database="postgres", user="x")
    counts = monitors.monitor_sweep(name="e2e", targets=[down.name])
    assert counts["started"] == 1
    deadline = time.monotonic() + 45
    incident = None
    while (
        incident is None
        or not DiagnosticRun.objects.filter(incident=incident, status="succeeded").exists()
    ):
        assert time.monotonic() < deadline, worker["log"].read_text()[-3000:]
        time.sleep(0.3)
        incident = Incident.objects.filter(kind="availability").first()
    assert incident.severity == "SEV1" and incident.detected_by == "monitor/e2e"
    assert IncidentTarget.objects.filter(incident=incident, target=down).exists()
    monitor_run = DiagnosticRun.objects.get(target=down, trigger="monitor")
    assert monitor_run.status == "succeeded"
    event = TimelineEvent.objects.get(incident=incident, kind=EventKind.ALERT)
    assert event.data["run_id"] == monitor_run.pk and event.data["monitor"] == "e2e"
    # The run at detection (linked to the incident) summarised the outage on the timeline.
    assert TimelineEvent.objects.filter(incident=incident, kind=EventKind.DIAGNOSTIC_RUN).exists()
