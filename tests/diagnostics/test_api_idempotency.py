"""Idempotency-Key on diagnostic runs: a retried start does not queue a second run."""

import pytest

from diagnostics.models import DiagnosticRun
from tests.diagnostics.d2_fixtures import TEST_KEYS

pytestmark = pytest.mark.django_db


def test_a_retried_run_start_replays_the_202_and_queues_once(
    responder_api, live_target, test_checks, sent_runs, django_capture_on_commit_callbacks
):
    url = f"/api/v1/diagnostics/targets/{live_target.pk}/runs/"
    with django_capture_on_commit_callbacks(execute=True):
        first = responder_api.post(
            url, {"keys": TEST_KEYS}, format="json", HTTP_IDEMPOTENCY_KEY="run-1"
        )
    with django_capture_on_commit_callbacks(execute=True):
        again = responder_api.post(
            url, {"keys": TEST_KEYS}, format="json", HTTP_IDEMPOTENCY_KEY="run-1"
        )
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again["Location"] == first["Location"]
    assert DiagnosticRun.objects.count() == 1
    assert sent_runs == [[first.json()["id"]]]
    other = responder_api.post(
        "/api/v1/diagnostics/runs/",
        {"target": live_target.pk, "keys": TEST_KEYS},
        format="json",
        HTTP_IDEMPOTENCY_KEY="run-1",
    )
    assert other.status_code == 422
