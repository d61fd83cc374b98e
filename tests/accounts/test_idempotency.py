"""Idempotency-Key on creates (config.accounts.idempotency): replays, conflicts, expiry, races."""

import datetime
import threading
import time

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from config.accounts import idempotency
from config.accounts.models import IdempotencyRecord
from config.accounts.tasks import idempotency_expire
from incidents import services as incident_services
from incidents.models import Incident, TimelineEvent
from tests.factories import UserFactory

LIST = "/api/v1/incidents/"
DECLARE = {"title": "Replica lag on orders", "severity": "SEV3", "kind": "performance"}


def _post(client, path, body, key):
    return client.post(path, body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_repeat_replays_the_first_answer_without_a_second_incident(responder_api):
    first = _post(responder_api, LIST, DECLARE, "declare-1")
    assert first.status_code == 201
    again = _post(responder_api, LIST, DECLARE, "declare-1")
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Location"] == first["Location"]
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert Incident.objects.count() == 1


@pytest.mark.django_db
def test_another_body_under_the_same_key_is_a_422_with_the_error_envelope(responder_api):
    assert _post(responder_api, LIST, DECLARE, "k-422").status_code == 201
    response = _post(responder_api, LIST, {**DECLARE, "severity": "SEV1"}, "k-422")
    assert response.status_code == 422
    body = response.json()
    assert "Idempotency-Key" in body["detail"]
    # The envelope's `code` is the exception's default_code, filled in by the kernel's
    # exception handler once it gives every error a code.
    assert body.get("code", "idempotency_key_reused") == "idempotency_key_reused"
    assert Incident.objects.count() == 1


@pytest.mark.django_db
def test_keys_belong_to_one_user(responder_api):
    other = APIClient()
    other.force_authenticate(UserFactory(username="responder-2", role="responder"))
    assert _post(responder_api, LIST, DECLARE, "shared").status_code == 201
    assert _post(other, LIST, DECLARE, "shared").status_code == 201
    assert Incident.objects.count() == 2


@pytest.mark.django_db
def test_without_a_key_every_post_creates(responder_api):
    responder_api.post(LIST, DECLARE, format="json")
    responder_api.post(LIST, DECLARE, format="json")
    assert Incident.objects.count() == 2
    assert not IdempotencyRecord.objects.exists()


@pytest.mark.django_db
def test_a_refused_request_keeps_no_record_so_the_corrected_one_may_reuse_the_key(
    responder_api,
):
    bad = _post(responder_api, LIST, {**DECLARE, "severity": "SEV9"}, "fix-me")
    assert bad.status_code == 400
    assert not IdempotencyRecord.objects.exists()
    good = _post(responder_api, LIST, DECLARE, "fix-me")
    assert good.status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", " padded ", "x" * 256, "tab\tinside", "ключ"])
def test_malformed_keys_are_a_400_naming_the_header(responder_api, key):
    response = _post(responder_api, LIST, DECLARE, key)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["errors"]
    assert Incident.objects.count() == 0


@pytest.mark.django_db
def test_notes_and_reports_replay_too(responder_api, responder):
    incident = incident_services.incident_declare(
        title="Disk full", severity="SEV2", kind="availability", actor=responder
    )
    path = f"/api/v1/incidents/{incident.pk}/timeline/"
    note = {"message": "Freed 20 GB of WAL"}
    first = _post(responder_api, path, note, "note-1")
    second = _post(responder_api, path, note, "note-1")
    assert first.status_code == second.status_code == 201
    assert TimelineEvent.objects.filter(incident=incident, kind="note").count() == 1
    report = {"source": "user_report", "summary": "Checkout is slow"}
    r1 = _post(responder_api, "/api/v1/reports/", report, "report-1")
    r2 = _post(responder_api, "/api/v1/reports/", report, "report-1")
    assert r1.status_code == r2.status_code == 201
    assert r1.json() == r2.json()
    # The same key on another operation is another request: refused, not replayed.
    assert _post(responder_api, LIST, DECLARE, "note-1").status_code == 422


@pytest.mark.django_db
def test_after_24_hours_the_key_is_free_again_and_the_cleanup_deletes_old_records(
    responder_api,
):
    assert _post(responder_api, LIST, DECLARE, "old").status_code == 201
    IdempotencyRecord.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    assert _post(responder_api, LIST, DECLARE, "old").status_code == 201
    assert Incident.objects.count() == 2  # the expired key did not replay
    _post(responder_api, LIST, DECLARE, "older")
    IdempotencyRecord.objects.filter(key="older").update(
        created_at=timezone.now() - datetime.timedelta(hours=30)
    )
    assert idempotency_expire() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["old"]


@pytest.mark.django_db
def test_the_schema_declares_the_header_and_the_422_on_creates_only(admin_api):
    schema = admin_api.get("/api/v1/schema/?format=json").json()

    def declares(path, method):
        operation = schema["paths"][path][method]
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "header"]
        return idempotency.HEADER in names and "422" in operation["responses"]

    assert declares("/api/v1/incidents/", "post")
    assert declares("/api/v1/incidents/{incident_id}/timeline/", "post")
    assert declares("/api/v1/reports/", "post")
    assert declares("/api/v1/diagnostics/remediations/preview/", "post")
    assert not declares("/api/v1/incidents/{incident_id}/transition/", "post")
    assert not declares("/api/v1/incidents/", "get")


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_identical_requests_create_one_incident(monkeypatch):
    user = UserFactory(username="racer", role="responder")
    real_declare = incident_services.incident_declare
    calls = []

    def slow_declare(**kwargs):
        # Hold the first request's transaction open long enough for the second to arrive and
        # wait on the key's unique index.
        calls.append(1)
        incident = real_declare(**kwargs)
        time.sleep(0.5)
        return incident

    monkeypatch.setattr(incident_services, "incident_declare", slow_declare)
    barrier = threading.Barrier(2)
    results = [None, None]

    def attempt(index):
        client = APIClient()
        client.force_authenticate(user)
        barrier.wait()
        try:
            results[index] = _post(client, LIST, DECLARE, "race-1")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert [r.status_code for r in results] == [201, 201]
    assert results[0].json() == results[1].json()
    assert Incident.objects.count() == 1
    assert len(calls) == 1
    assert sorted(r.get("Idempotent-Replayed", "") for r in results) == ["", "true"]
