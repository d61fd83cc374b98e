"""A real Celery worker: deliveries are retried with backoff until the receiver takes them."""

import time

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection

from comms import services
from comms.models import Channel, Delivery, DeliveryState, MessageTemplate
from incidents import services as incident_services
from tests.celery_worker import celery_worker


@pytest.fixture
def worker(tmp_path):
    """`celery worker --pool=solo` on this test's database and Redis, stopped afterwards."""
    # Nothing left over from earlier runs on this Redis database.
    with celery_worker(
        tmp_path,
        name="quell-comms",
        private_queue=False,
        purge_default=True,
        env={
            "QUELL_COMMS_RETRY_BASE_SECONDS": "1",
            "QUELL_COMMS_HTTP_TIMEOUT": "0.5",
            "QUELL_BASE_URL": "http://status.test",
        },
    ) as running:
        yield running.proc


def _wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_retries_a_failing_receiver_with_backoff_and_a_hang_never_blocks_publish(
    worker, receiver
):
    user = User.objects.create_user("ic-worker", "ic@example.com", "x")
    user.groups.add(Group.objects.get(name="commander"))
    incident = incident_services.incident_declare(title="Replica lag", severity="SEV2", actor=user)
    # The channel comes after the declaration, so only this update is sent to it.
    Channel.objects.create(name="flaky", kind="slack", audience="internal", url=receiver.url)
    # First a hang (longer than the timeout), then a 503, then success.
    receiver.script = [("hang", 2), 503]
    template = MessageTemplate.objects.get(key="internal-update")
    started = time.monotonic()
    update = services.update_create_and_publish(
        incident_id=incident.pk, template_id=template.pk, actor=user
    )
    assert time.monotonic() - started < 1.0  # publishing waits for no receiver
    connection.close()  # let the worker's transactions be seen fresh

    def delivered():
        return Delivery.objects.filter(status_update=update, state=DeliveryState.DELIVERED).exists()

    assert _wait_for(delivered), list(
        Delivery.objects.filter(status_update=update).values("state", "attempts", "error")
    )
    delivery = Delivery.objects.get(status_update=update)
    assert delivery.attempts == 3
    assert len(receiver.requests) == 3
    times = [r["time"] for r in receiver.requests]
    # Backoff: about 1 s after the first failure, about 2 s after the second.
    assert times[1] - times[0] >= 0.9
    assert times[2] - times[1] >= 1.8
