"""End to end: a real Celery worker runs a monitor's run and its evaluation (the run task's
hook), and the breach becomes an incident.

The worker consumes a private queue (the runs this test sends) and the default queue of this
test's broker database (REDIS_URL: a number per developer), where the worker's own follow-up
tasks (the evaluation, the run at detection) go.
"""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from diagnostics.detection import monitors
from diagnostics.models import DiagnosticRun, IncidentTarget
from incidents.models import EventKind, Incident, TimelineEvent
from tests.celery_worker import celery_worker
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path, settings):
    """`celery worker --pool=solo` on a private queue plus the default one; stopped at teardown."""
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    # Left-overs of earlier runs on this broker database must not reach this worker.
    with celery_worker(
        tmp_path,
        name="quell-monitor-e2e",
        consume_default=True,
        purge_default=True,
        env={"QUELL_COMMS_NOTIFY_ON_DECLARE": "false"},
    ) as running:
        yield running


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
