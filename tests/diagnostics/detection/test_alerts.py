"""Alert ingestion: Alertmanager and generic webhooks, auth, mapping, deduplication."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from diagnostics.models import DiagnosticRun, IncidentTarget
from incidents.models import EventKind, Incident, Status, TimelineEvent
from incidents.services import incident_transition
from tests.diagnostics.records import make_target
from tests.factories import UserFactory, api_token_for

pytestmark = pytest.mark.django_db

AM_URL = "/api/v1/alerts/alertmanager/"
GENERIC_URL = "/api/v1/alerts/webhook/"
SECRET = "s3cret-alert-token"


@pytest.fixture(autouse=True)
def _settings(settings, sent_runs_alerts):
    settings.QUELL_ALERT_WEBHOOK_TOKEN = SECRET
    settings.QUELL_DETECTION_REPEAT_WINDOW_S = 3600
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    cache.clear()


@pytest.fixture
def sent_runs_alerts(monkeypatch):
    """Runs the services enqueue, recorded instead of sent to a broker."""
    sent: list[int] = []
    monkeypatch.setattr(
        "diagnostics.services._enqueue", lambda pairs: sent.extend(p[0] for p in pairs)
    )
    return sent


@pytest.fixture
def target(db):
    return make_target(name="orders-primary", host="db1.internal", database="orders")


@pytest.fixture
def am():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    return client


def am_payload(
    *alerts,
    receiver="quell",
    status="firing",
    group_key='{}:{alertname="PostgresTooManyConnections"}',
    group_labels=None,
):
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels or {},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def am_alert(
    name="PostgresTooManyConnections",
    *,
    status="firing",
    fingerprint="a1b2c3d4e5f60718",
    severity="critical",
    **labels,
):
    return {
        "status": status,
        "labels": {"alertname": name, "severity": severity, **labels},
        "annotations": {"summary": "Connections above 90 % of max_connections"},
        "startsAt": "2026-11-27T10:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-27T10:30:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=pg_connections",
        "fingerprint": fingerprint,
    }


def alert_events(incident):
    return list(
        TimelineEvent.objects.filter(incident=incident, kind=EventKind.ALERT).order_by("id")
    )


# --- Alertmanager ----------------------------------------------------------------------------


def test_firing_alert_declares_incident_links_target_and_queues_run(
    am, target, sent_runs_alerts, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        resp = am.post(AM_URL, am_payload(am_alert(quell_target="orders-primary")), format="json")
    assert resp.status_code == 200, resp.content
    outcome = resp.json()["alerts"][0]
    assert outcome["action"] == "declared" and outcome["target"] == "orders-primary"
    incident = Incident.objects.get(pk=outcome["incident_id"])
    assert incident.detection_source == "alert"
    assert incident.detected_by == "alertmanager/quell"
    assert incident.kind == "performance" and incident.severity == "SEV2"
    assert incident.detected_at.isoformat().startswith("2026-11-27T10:00:00")
    assert IncidentTarget.objects.filter(incident=incident, target=target).exists()
    run = DiagnosticRun.objects.get(incident=incident)
    assert run.status == "queued" and run.trigger == "incident"
    assert sent_runs_alerts == [run.pk]
    (event,) = alert_events(incident)
    assert event.actor_label == "alertmanager"
    assert event.data["fingerprint"] == "a1b2c3d4e5f60718"
    assert event.data["labels"]["quell_target"] == "orders-primary"
    assert event.data["raw"]["generatorURL"].startswith("http://prometheus")


def test_repeat_notification_is_counted_not_repeated_on_the_timeline(am, target, settings):
    payload = am_payload(am_alert(quell_target="orders-primary"))
    first = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    for n in (1, 2):
        again = am.post(AM_URL, payload, format="json").json()["alerts"][0]
        assert again["action"] == "repeated" and again["repeats"] == n
        assert again["incident_id"] == first["incident_id"]
    incident = Incident.objects.get(pk=first["incident_id"])
    assert len(alert_events(incident)) == 1
    assert Incident.objects.count() == 1
    # Past the window the next notification is recorded again, carrying the count.
    settings.QUELL_DETECTION_REPEAT_WINDOW_S = 0
    later = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    assert later["action"] == "appended" and later["repeats"] == 2
    events = alert_events(incident)
    assert len(events) == 2 and events[1].data["repeats"] == 2
    assert "repeated 2 times" in events[1].message


def test_another_alert_on_the_same_target_joins_its_open_incident_whatever_its_kind(am, target):
    first = am.post(AM_URL, am_payload(am_alert(quell_target="orders-primary")), format="json")
    incident_id = first.json()["alerts"][0]["incident_id"]
    other = am_alert(
        "PostgresLongRunningQueries", fingerprint="ffff0000ffff0000", quell_target="orders-primary"
    )
    second = am.post(AM_URL, am_payload(other, group_key="other-group"), format="json").json()
    assert second["alerts"][0]["action"] == "appended"
    assert second["alerts"][0]["incident_id"] == incident_id
    # The database being down is the same incident (one target, one story), more severe than
    # it was declared: the event says so, a commander decides.
    down = am_alert("PostgresDown", fingerprint="0000aaaa0000aaaa", quell_target="orders-primary")
    third = am.post(AM_URL, am_payload(down, group_key="down-group"), format="json").json()
    assert third["alerts"][0] == {
        "action": "appended",
        "fingerprint": "0000aaaa0000aaaa",
        "incident_id": incident_id,
        "target": "orders-primary",
        "repeats": 0,
    }
    assert Incident.objects.count() == 1
    assert (
        "Its severity SEV1 is above the incident's SEV2"
        in alert_events(Incident.objects.get())[-1].message
    )


def test_resolved_alert_adds_note_and_leaves_incident_open(am, target):
    fired = am.post(AM_URL, am_payload(am_alert(quell_target="orders-primary")), format="json")
    incident_id = fired.json()["alerts"][0]["incident_id"]
    resolved = am_payload(am_alert(status="resolved", quell_target="orders-primary"))
    outcome = am.post(AM_URL, resolved, format="json").json()["alerts"][0]
    assert outcome["action"] == "resolved"
    incident = Incident.objects.get(pk=incident_id)
    assert incident.status == Status.INVESTIGATING
    last = alert_events(incident)[-1]
    assert last.data["status"] == "resolved"
    assert "resolved" in last.message and "stays open" in last.message
    # A second copy of the resolved notification is not written again.
    assert am.post(AM_URL, resolved, format="json").json()["alerts"][0]["action"] == "repeated"
    assert len(alert_events(incident)) == 2


def test_resolved_alert_without_open_incident_is_ignored(am, target):
    resolved = am_payload(am_alert(status="resolved", quell_target="orders-primary"))
    outcome = am.post(AM_URL, resolved, format="json").json()["alerts"][0]
    assert outcome["action"] == "ignored" and outcome["incident_id"] is None
    assert not Incident.objects.exists()


def test_alert_after_incident_resolved_declares_a_new_one(am, target, commander):
    payload = am_payload(am_alert(quell_target="orders-primary"))
    first = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    incident_transition(incident_id=first["incident_id"], to_status="resolved", actor=commander)
    again = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    assert again["action"] == "declared" and again["incident_id"] != first["incident_id"]


def test_unknown_target_declares_incident_without_target_deduplicated_by_fingerprint(am, target):
    alert = am_alert(
        instance="db9.elsewhere:9187", datname="billing", fingerprint="feedfacefeedface"
    )
    first = am.post(AM_URL, am_payload(alert), format="json").json()["alerts"][0]
    assert first["action"] == "declared" and first["target"] is None
    incident = Incident.objects.get(pk=first["incident_id"])
    assert not IncidentTarget.objects.filter(incident=incident).exists()
    assert not DiagnosticRun.objects.exists()
    assert "db9.elsewhere:9187/billing" in incident.title
    again = am.post(AM_URL, am_payload(alert), format="json").json()["alerts"][0]
    assert again["action"] == "repeated" and again["incident_id"] == incident.pk
    # Another alert from another notification group: the same unknown place is not enough to
    # call it the same incident.
    other = dict(alert, fingerprint="0123456789abcdef")
    third = am.post(AM_URL, am_payload(other, group_key="g2"), format="json").json()["alerts"][0]
    assert third["action"] == "declared" and third["incident_id"] != incident.pk


def test_target_found_by_instance_host_and_datname(am, target):
    make_target(name="orders-replica", host="db2.internal", database="orders")
    alert = am_alert(instance="db1.internal:9187", datname="orders")
    outcome = am.post(AM_URL, am_payload(alert), format="json").json()["alerts"][0]
    assert outcome["target"] == "orders-primary"


def test_ambiguous_labels_match_no_target(am, target):
    make_target(name="orders-replica", host="db2.internal", database="orders")
    outcome = am.post(AM_URL, am_payload(am_alert(datname="orders")), format="json").json()
    assert outcome["alerts"][0]["target"] is None


def test_several_alerts_in_one_notification_are_each_handled(am, target):
    payload = am_payload(
        am_alert(quell_target="orders-primary"),
        am_alert("PostgresDeadlocks", fingerprint="1111", quell_target="orders-primary"),
    )
    body = am.post(AM_URL, payload, format="json").json()
    assert body["received"] == 2
    assert [a["action"] for a in body["alerts"]] == ["declared", "appended"]
    assert Incident.objects.count() == 1


def test_severity_mapping_is_configurable(am, target, settings):
    settings.QUELL_ALERT_SEVERITY_MAP = {"critical": "SEV1"}
    body = am.post(AM_URL, am_payload(am_alert(quell_target="orders-primary")), format="json")
    assert Incident.objects.get(pk=body.json()["alerts"][0]["incident_id"]).severity == "SEV1"


def test_kind_and_severity_labels_win_over_the_name(am):
    alert = am_alert("SomethingOdd", severity="warning", quell_kind="data_integrity")
    alert["labels"]["quell_severity"] = "SEV2"
    body = am.post(AM_URL, am_payload(alert), format="json").json()
    incident = Incident.objects.get(pk=body["alerts"][0]["incident_id"])
    assert (incident.kind, incident.severity) == ("data_integrity", "SEV2")


# --- Auth --------------------------------------------------------------------------------------


def test_unauthenticated_is_401(target):
    resp = APIClient().post(AM_URL, am_payload(am_alert()), format="json")
    assert resp.status_code == 401
    assert resp["WWW-Authenticate"].startswith("Bearer")
    assert not Incident.objects.exists()


def test_wrong_bearer_is_401(target):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer nope")
    assert client.post(AM_URL, am_payload(am_alert()), format="json").status_code == 401


def test_bearer_refused_when_no_secret_is_configured(settings, target):
    settings.QUELL_ALERT_WEBHOOK_TOKEN = ""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer ")
    assert client.post(AM_URL, am_payload(am_alert()), format="json").status_code == 401


def test_viewer_token_is_403_responder_token_is_accepted(target):
    viewer = UserFactory(username="alert-viewer", role="viewer")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(viewer)}")
    assert client.post(GENERIC_URL, {"title": "x"}, format="json").status_code == 403
    bot = UserFactory(username="alert-bot", role="responder")
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(bot)}")
    resp = client.post(GENERIC_URL, {"title": "Replication lag high"}, format="json")
    assert resp.status_code == 200
    event = alert_events(Incident.objects.get())[0]
    assert event.actor_id == bot.pk


def _signed(body: bytes, at: int) -> str:
    mac = hmac.new(SECRET.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def test_timestamped_hmac_signature_is_accepted_and_a_bad_one_refused(target):
    body = json.dumps(am_payload(am_alert(quell_target="orders-primary"))).encode()
    client = APIClient()
    resp = client.post(
        AM_URL,
        body,
        content_type="application/json",
        HTTP_X_QUELL_SIGNATURE=_signed(body, int(time.time())),
    )
    assert resp.status_code == 200, resp.content
    bad = client.post(
        AM_URL,
        body,
        content_type="application/json",
        HTTP_X_QUELL_SIGNATURE=f"t={int(time.time())},v1=" + "0" * 64,
    )
    assert bad.status_code == 401


def test_a_captured_signed_request_cannot_be_replayed_later(target):
    """The timestamp is signed: an old capture (or the former untimed form) is refused."""
    body = json.dumps(am_payload(am_alert(quell_target="orders-primary"))).encode()
    client = APIClient()
    stale = client.post(
        AM_URL,
        body,
        content_type="application/json",
        HTTP_X_QUELL_SIGNATURE=_signed(body, int(time.time()) - 301),
    )
    assert stale.status_code == 401
    assert "t=<unix time>,v1=" in stale.json()["detail"]
    untimed = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    old_form = client.post(
        AM_URL, body, content_type="application/json", HTTP_X_QUELL_SIGNATURE=f"sha256={untimed}"
    )
    assert old_form.status_code == 401
    assert not Incident.objects.exists()


def test_a_nul_or_lone_surrogate_anywhere_is_a_400_not_a_500(am, target):
    for label_key in (r"bad\u0000key", r"bad\ud800key"):
        alert = am_alert(quell_target="orders-primary")
        raw = json.dumps(am_payload(alert)).replace('"alertname"', f'"{label_key}"', 1)
        resp = am.post(AM_URL, raw, content_type="application/json")
        assert resp.status_code == 400, (label_key, resp.status_code)
    assert not Incident.objects.exists()


def test_more_alerts_than_the_cap_is_a_413_with_a_message(am, target, settings):
    settings.QUELL_ALERTS_MAX_PER_PAYLOAD = 3
    alerts = [
        am_alert(f"A{n}", fingerprint=f"f{n}", quell_target="orders-primary") for n in range(4)
    ]
    resp = am.post(AM_URL, am_payload(*alerts), format="json")
    assert resp.status_code == 413
    assert "at most 3" in resp.json()["detail"]
    assert not Incident.objects.exists()


# --- Bad payloads ------------------------------------------------------------------------------


def test_bad_alertmanager_payload_is_400_with_field_messages(am, target, caplog):
    payload = am_payload(am_alert(quell_target="orders-primary"))
    bad = copy.deepcopy(payload)
    bad["alerts"][0]["status"] = "burning"
    del bad["alerts"][0]["labels"]["alertname"]
    resp = am.post(AM_URL, bad, format="json")
    assert resp.status_code == 400
    errors = resp.json()["errors"]["alerts"]
    assert any(m.startswith("0.status: ") for m in errors), errors
    assert any(m.startswith("0.labels") for m in errors), errors
    assert not Incident.objects.exists()
    assert "burning" in caplog.text  # the refused body is logged, not lost


def test_bad_times_and_versions_are_400(am):
    alert = am_alert()
    alert["startsAt"] = "yesterday"
    resp = am.post(AM_URL, am_payload(alert), format="json")
    assert resp.status_code == 400 and "startsAt" in json.dumps(resp.json())
    resp = am.post(AM_URL, dict(am_payload(am_alert()), version="3"), format="json")
    assert resp.status_code == 400 and "version" in resp.json()["errors"]


def test_not_json_and_not_an_object_are_400(am):
    resp = am.post(AM_URL, "{not json", content_type="application/json")
    assert resp.status_code == 400 and resp.json()["errors"]["non_field_errors"]
    resp = am.post(AM_URL, [1, 2], format="json")
    assert resp.status_code == 400


# --- Generic webhook ---------------------------------------------------------------------------


def test_generic_webhook_declares_then_appends_then_resolves(am, target, sent_runs_alerts):
    alert = {
        "title": "Checkout queries slow",
        "severity": "warning",
        "target": "orders-primary",
        "summary": "p99 above 2 s",
        "fingerprint": "checkout-slow",
        "source": "grafana",
    }
    first = am.post(GENERIC_URL, alert, format="json")
    assert first.status_code == 200, first.content
    outcome = first.json()["alerts"][0]
    incident = Incident.objects.get(pk=outcome["incident_id"])
    assert outcome["action"] == "declared"
    assert (incident.kind, incident.severity) == ("performance", "SEV3")
    assert incident.detected_by == "webhook/grafana"
    assert IncidentTarget.objects.filter(incident=incident, target=target).exists()
    assert DiagnosticRun.objects.filter(incident=incident, target=target).count() == 1
    assert am.post(GENERIC_URL, alert, format="json").json()["alerts"][0]["action"] == "repeated"
    resolved = am.post(GENERIC_URL, dict(alert, status="resolved"), format="json").json()
    assert resolved["alerts"][0]["action"] == "resolved"
    assert Incident.objects.get(pk=incident.pk).status == Status.INVESTIGATING


def test_generic_webhook_validation_messages(am):
    resp = am.post(
        GENERIC_URL,
        {"severity": "apocalyptic", "kind": "weird", "status": "maybe", "url": "nope"},
        format="json",
    )
    assert resp.status_code == 400
    assert set(resp.json()["errors"]) >= {"title", "severity", "kind", "status", "url"}
    assert not Incident.objects.exists()


def test_generic_webhook_unknown_target_still_declares(am):
    resp = am.post(GENERIC_URL, {"title": "DB down", "target": "ghost"}, format="json")
    outcome = resp.json()["alerts"][0]
    incident = Incident.objects.get(pk=outcome["incident_id"])
    assert outcome["target"] is None and incident.kind == "availability"
    assert "ghost (not a registered target)" in alert_events(incident)[0].message
