"""Signals grouped as responders think of them: one Alertmanager notification is one incident,
targets resolve by datname and aliases, a target's signals go to its most severe open incident,
and one host down is one incident (issue 12.9). Payloads are Alertmanager v4 webhooks as
Alertmanager sends them for postgres_exporter's alerts (awesome-prometheus-alerts' rules)."""

from __future__ import annotations

import datetime

import pytest
from rest_framework.test import APIClient

from diagnostics.detection import monitors
from diagnostics.detection.models import Alert, AlertGroup
from diagnostics.models import IncidentTarget
from incidents.models import EventKind, Incident, Status, TimelineEvent
from incidents.services import incident_declare, incident_transition
from tests.diagnostics.detection.test_monitors import monitor_run
from tests.diagnostics.records import make_target
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

AM_URL = "/api/v1/alerts/alertmanager/"
SECRET = "routing-secret"


@pytest.fixture(autouse=True)
def _settings(settings, monkeypatch):
    settings.QUELL_ALERT_WEBHOOK_TOKEN = SECRET
    settings.QUELL_DETECTION_REPEAT_WINDOW_S = 3600
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    monkeypatch.setattr("diagnostics.services._enqueue", lambda pairs: None)


@pytest.fixture
def am():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    return client


@pytest.fixture
def shop(db):
    return make_target(name="shop", host="pg1.internal", database="shop")


def exporter_alert(name, *, datname="shop", instance="shop-db:9187", status="firing", **extra):
    labels = {
        "alertname": name,
        "datname": datname,
        "instance": instance,
        "job": "postgres",
        "severity": extra.pop("severity", "critical"),
        **extra,
    }
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": f"{name} (instance {instance})",
            "description": f"{name} on {datname}\n  VALUE = 1\n  LABELS = {labels}",
        },
        "startsAt": "2026-12-04T02:10:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=pg_stat_database_deadlocks",
        "fingerprint": f"{abs(hash((name, datname, instance))):016x}"[:16],
    }


def notification(*alerts, group_labels, receiver="quell", group_key=None):
    """What Alertmanager posts for one group (route group_by: the group labels' names)."""
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items()))
    common = {
        k: v for k, v in alerts[0]["labels"].items() if all(a["labels"].get(k) == v for a in alerts)
    }
    return {
        "version": "4",
        "groupKey": group_key if group_key is not None else f"{{}}:{{{shown}}}",
        "truncatedAlerts": 0,
        "status": "firing" if any(a["status"] == "firing" for a in alerts) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
    }


def test_one_notification_is_one_incident_with_its_alerts_listed(am, shop):
    payload = notification(
        exporter_alert("PostgresqlTooManyConnections", severity="warning"),
        exporter_alert("PostgresqlDeadLocks"),
        group_labels={"datname": "shop"},
    )
    body = am.post(AM_URL, payload, format="json").json()
    # Declared by the worst of the notification (the deadlocks, critical), the other appended.
    assert [a["action"] for a in body["alerts"]] == ["appended", "declared"]
    assert {a["incident_id"] for a in body["alerts"]} == {Incident.objects.get().pk}
    incident = Incident.objects.get()
    assert [a["target"] for a in body["alerts"]] == ["shop", "shop"]  # datname alone
    assert sorted(incident.alerts.values_list("name", "status")) == [
        ("PostgresqlDeadLocks", "firing"),
        ("PostgresqlTooManyConnections", "firing"),
    ]
    group = AlertGroup.objects.get(key__startswith="alertmanager:")
    assert group.incident == incident and group.label == 'Alertmanager group {datname="shop"}'
    # Its next notification (one alert resolved) stays on it.
    resolved = exporter_alert("PostgresqlTooManyConnections", status="resolved", severity="warning")
    later = notification(resolved, group_labels={"datname": "shop"})
    assert am.post(AM_URL, later, format="json").json()["alerts"][0]["action"] == "resolved"
    assert incident.alerts.get(name="PostgresqlTooManyConnections").status == "resolved"


def test_group_labels_group_a_notification_without_a_group_key(am, db):
    """No registered target: only the group holds the two alerts together."""
    payload = notification(
        exporter_alert("PostgresqlTooManyConnections", datname="ledger", instance="far:9187"),
        exporter_alert("PostgresqlDeadLocks", datname="ledger", instance="far:9187"),
        group_labels={"datname": "ledger"},
        group_key="",
    )
    body = am.post(AM_URL, payload, format="json").json()
    assert sorted(a["action"] for a in body["alerts"]) == ["appended", "declared"]
    assert Incident.objects.count() == 1


def test_an_alias_resolves_the_exporters_instance_and_joins_the_monitors_incident(am, shop):
    shop.aliases = ["shop-db:9187"]
    shop.save()
    make_target(name="shop-replica", host="pg2.internal", database="shop")  # datname ambiguous
    run = monitor_run(shop, {"connections": ("critical", {})})
    [declared] = monitors.monitor_run_evaluate(run_id=run.pk)
    payload = notification(
        exporter_alert("PostgresqlTooManyConnections", instance="SHOP-DB:9187"),
        group_labels={"alertname": "PostgresqlTooManyConnections"},
    )
    outcome = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    assert outcome["target"] == "shop"
    assert outcome["action"] == "appended"
    assert outcome["incident_id"] == declared["incident_id"]


def test_a_target_with_several_open_incidents_gets_its_signals_on_the_most_severe(am, shop):
    commander = UserFactory(username="ic")
    older_sev3 = incident_declare(title="Slow reports", severity="SEV3", actor=commander)
    sev1 = incident_declare(title="Checkout writes blocked", severity="SEV1", actor=commander)
    newer_sev2 = incident_declare(title="Replica lag", severity="SEV2", actor=commander)
    for incident in (older_sev3, sev1, newer_sev2):
        IncidentTarget.objects.create(incident=incident, target=shop)
    run = monitor_run(shop, {"connections": ("critical", {})})
    [outcome] = monitors.monitor_run_evaluate(run_id=run.pk)
    assert outcome["incident_id"] == sev1.pk
    event = TimelineEvent.objects.filter(incident=sev1, kind=EventKind.ALERT).get()
    assert (
        f"routed to the most severe of 3 open incidents on shop (SEV1; also open: "
        f"#{older_sev3.pk} SEV3, #{newer_sev2.pk} SEV2)" in event.message
    )
    # Equal severities: the newest.
    newest_sev1 = incident_declare(title="Checkout again", severity="SEV1", actor=commander)
    IncidentTarget.objects.create(incident=newest_sev1, target=shop)
    payload = notification(exporter_alert("PostgresqlDeadLocks"), group_labels={"x": "y"})
    outcome = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    assert outcome["incident_id"] == newest_sev1.pk


def test_one_server_down_is_one_incident_listing_every_database_on_it(am, shop):
    billing = make_target(name="billing", host="pg1.internal", database="billing")
    elsewhere = make_target(name="elsewhere", host="pg9.internal", database="other")
    # Another PostgreSQL server on the same machine (another port) fails apart.
    other_port = make_target(name="ledger", host="pg1.internal", port=5433, database="ledger")
    outcomes = []
    for target in (shop, billing, elsewhere, other_port):
        payload = notification(
            exporter_alert("PostgresqlDown", datname=target.database, instance="x:9187"),
            group_labels={"datname": target.database},  # one notification per database
        )
        outcomes.append(am.post(AM_URL, payload, format="json").json()["alerts"][0])
    assert [o["action"] for o in outcomes] == ["declared", "appended", "declared", "declared"]
    host_down = Incident.objects.get(pk=outcomes[0]["incident_id"])
    assert host_down.kind == "availability"
    assert set(host_down.affected_targets.values_list("target__name", flat=True)) == {
        "shop",
        "billing",
    }
    assert outcomes[2]["incident_id"] != host_down.pk


def test_resolving_the_incident_closes_its_groups_and_reopening_restores_them(
    am, shop, django_capture_on_commit_callbacks
):
    commander = UserFactory(username="ic2")
    payload = notification(exporter_alert("PostgresqlDeadLocks"), group_labels={"datname": "shop"})
    first = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    incident_id = first["incident_id"]
    assert AlertGroup.objects.filter(incident_id=incident_id, is_open=True).count() == 2
    with django_capture_on_commit_callbacks(execute=True):  # the lifecycle's signals
        incident_transition(incident_id=incident_id, to_status=Status.RESOLVED, actor=commander)
    assert not AlertGroup.objects.filter(incident_id=incident_id, is_open=True).exists()
    with django_capture_on_commit_callbacks(execute=True):
        incident_transition(
            incident_id=incident_id, to_status=Status.INVESTIGATING, reason="Again", actor=commander
        )
    assert AlertGroup.objects.filter(incident_id=incident_id, is_open=True).count() == 2
    again = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    assert again["incident_id"] == incident_id


def test_repeats_are_counted_on_the_alert_and_carried_by_the_next_record(am, shop, settings):
    payload = notification(exporter_alert("PostgresqlDeadLocks"), group_labels={"datname": "shop"})
    for _ in range(3):
        am.post(AM_URL, payload, format="json")
    alert = Alert.objects.get()
    assert (alert.repeats, alert.deliveries) == (2, 3)
    Alert.objects.update(recorded_at=alert.recorded_at - datetime.timedelta(hours=2))
    outcome = am.post(AM_URL, payload, format="json").json()["alerts"][0]
    assert (outcome["action"], outcome["repeats"]) == ("appended", 2)
    last = TimelineEvent.objects.filter(kind=EventKind.ALERT).order_by("-id").first()
    assert "(repeated 2 times since last recorded)" in last.message
    alert.refresh_from_db()
    assert (alert.repeats, alert.deliveries) == (0, 4)


def test_aliases_are_kept_lower_case_and_unique_through_the_api(db):
    from tests.factories import api_token_for

    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {api_token_for(admin)}")
    created = client.post(
        "/api/v1/diagnostics/targets/",
        {
            "name": "ledger",
            "host": "127.0.0.1",
            "database": "ledger",
            "user": "quell_monitor",
            "aliases": ["Ledger-DB:9187", "ledger-db:9187 ", ""],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["aliases"] == ["ledger-db:9187"]
    too_long = client.patch(created.json()["url"], {"aliases": ["x" * 256]}, format="json").json()
    assert "aliases" in too_long["errors"]


def test_a_changed_alias_takes_effect_at_once(am, shop):
    """Resolutions are remembered briefly; saving a target forgets them."""
    payload = notification(
        exporter_alert("PostgresqlDeadLocks", datname="other", instance="edge:9187"),
        group_labels={"datname": "other"},
    )
    assert am.post(AM_URL, payload, format="json").json()["alerts"][0]["target"] is None
    shop.aliases = ["edge:9187"]
    shop.save()
    resolved = dict(payload, groupKey="later")
    assert am.post(AM_URL, resolved, format="json").json()["alerts"][0]["target"] is None
    shop.database = "other"
    shop.save()
    assert am.post(AM_URL, resolved, format="json").json()["alerts"][0]["target"] == "shop"


def test_an_incidents_alerts_through_the_api(am, shop, viewer_api):
    payload = notification(
        exporter_alert("PostgresqlTooManyConnections", severity="warning"),
        exporter_alert("PostgresqlDeadLocks"),
        group_labels={"datname": "shop"},
    )
    incident_id = am.post(AM_URL, payload, format="json").json()["alerts"][0]["incident_id"]
    resolved = exporter_alert("PostgresqlTooManyConnections", status="resolved", severity="warning")
    am.post(AM_URL, notification(resolved, group_labels={"datname": "shop"}), format="json")
    page = viewer_api.get(f"/api/v1/incidents/{incident_id}/alerts/").json()
    assert page["count"] == 2
    assert [(a["name"], a["status"], a["target"]) for a in page["results"]] == [
        ("PostgresqlDeadLocks", "firing", "shop"),
        ("PostgresqlTooManyConnections", "resolved", "shop"),
    ]
    assert page["results"][1]["deliveries"] == 2
    missing = viewer_api.get("/api/v1/incidents/999999/alerts/")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")
    assert APIClient().get(f"/api/v1/incidents/{incident_id}/alerts/").status_code == 401
