"""Real Celery workers: queued work starts when a worker becomes ready, and two workers on
one broker share a fan-out, each run executed exactly once."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from rest_framework.test import APIClient

from comms.models import Channel, Delivery, DeliveryKind, DeliveryState
from diagnostics import services
from diagnostics.models import CheckResult, DiagnosticRun
from incidents.services import incident_declare
from tests.celery_worker import celery_worker
from tests.comms.conftest import Receiver
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SUITE = {"keys": ["connections"]}


def _wait(predicate, timeout: float) -> float:
    """Seconds until predicate() held (fails the test after timeout)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not done within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - started


def test_work_queued_before_any_worker_listened_runs_when_one_is_ready(
    target_dbname, responder, tmp_path
):
    receiver = Receiver()
    try:
        channel = Channel.objects.create(
            name="ops", kind="slack", audience="internal", url=receiver.url
        )
        target = make_target(name="demo-primary", database=target_dbname)
        incident = incident_declare(title="Checkout slow", severity="SEV2", actor=responder)
        run = services.diagnostic_run_start(
            target_id=target.pk, incident_id=incident.pk, suite=SUITE
        )
        delivery = Delivery.objects.create(
            kind=DeliveryKind.UPDATE,
            transport=channel.kind,
            channel=channel,
            incident=incident,
            destination=channel.name,
            subject="Checkout slow",
            body="Investigating",
        )
        # The messages sent so far are gone (as when they were sent before the worker listened,
        # or to a broker that lost them): purge_default drops them before the worker starts.
        with celery_worker(tmp_path, name="late", private_queue=False, purge_default=True) as w:
            elapsed = _wait(
                lambda: (
                    DiagnosticRun.objects.get(pk=run.pk).status == "succeeded"
                    and Delivery.objects.get(pk=delivery.pk).state == DeliveryState.DELIVERED
                ),
                timeout=15,
            )
            log = w.log.read_text()
        print(f"queued run succeeded {elapsed:.1f} s after the worker was ready")
        assert "Dispatched 2 queued task(s)" in log
        run.refresh_from_db()
        assert run.requeues == 0  # not the stuck-run sweep's doing
        assert run.results.count() == 1
        assert len(receiver.requests) == 1
    finally:
        receiver.close()


def test_two_workers_share_a_fan_out_and_run_each_target_once(target_dbname, responder, tmp_path):
    targets = [make_target(name=f"fleet-{n:02d}", database=target_dbname).pk for n in range(20)]
    queue = f"fan-out-{uuid.uuid4().hex[:8]}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        celery_worker(tmp_path / "a", name="worker-a", queue=queue) as a,
        celery_worker(tmp_path / "b", name="worker-b", queue=queue) as b,
    ):
        client = APIClient()
        client.force_authenticate(responder)
        response = client.post(
            "/api/v1/diagnostics/runs/", {"targets": targets, **SUITE}, format="json"
        )
        assert response.status_code == 202, response.content
        run_ids = [r["id"] for r in response.json()["runs"]]
        assert len(run_ids) == 20
        runs = DiagnosticRun.objects.filter(pk__in=run_ids)
        _wait(lambda: not runs.exclude(status__in=["succeeded", "failed"]).exists(), timeout=90)
        logs = {"a": a.log.read_text(), "b": b.log.read_text()}
    assert set(runs.values_list("status", flat=True)) == {"succeeded"}
    executed = {
        name: re.findall(r"Task diagnostics\.run_diagnostics\[([0-9a-f-]+)\] succeeded", log)
        for name, log in logs.items()
    }
    print({name: len(ids) for name, ids in executed.items()})
    assert executed["a"] and executed["b"], "both workers took tasks"
    task_ids = executed["a"] + executed["b"]
    assert len(task_ids) == 20 and len(set(task_ids)) == 20  # each task once, on one worker
    assert set(task_ids) == set(runs.values_list("celery_task_id", flat=True))
    # Each run stored its check's result exactly once, and ran on its own target.
    assert CheckResult.objects.filter(run__in=run_ids).count() == 20
    assert set(runs.values_list("target_id", flat=True)) == set(targets)
