"""Upgrading keeps open incidents' alerts: detection's migrations turn the alert events on the
timeline (where dedup used to look) into Alert rows and open AlertGroups, and mark finished
monitor runs as judged, so nothing is declared twice or judged again after the upgrade."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("detection", None)]
NOW = datetime.datetime(2026, 12, 1, 10, 0, tzinfo=datetime.UTC)


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


def _fill(apps) -> dict:
    get = apps.get_model
    Incident, TimelineEvent = get("incidents", "Incident"), get("incidents", "TimelineEvent")
    target = get("diagnostics", "TargetDatabase").objects.create(
        name="shop", host="pg1", database="shop", environment="production"
    )

    def incident(title, status, severity="SEV2"):
        return Incident.objects.create(
            title=title,
            slug=title.lower().replace(" ", "-"),
            severity=severity,
            status=status,
            kind="performance",
            channel_name=f"inc-{title.lower().replace(' ', '-')}",
            detected_at=NOW,
            declared_at=NOW,
        )

    def alert_event(incident, fingerprint, status, minutes, **data):
        TimelineEvent.objects.create(
            incident=incident,
            kind="alert",
            message=f"Alert {status}",
            occurred_at=NOW + datetime.timedelta(minutes=minutes),
            data={
                "fingerprint": fingerprint,
                "status": status,
                "source": "alertmanager",
                "title": f"{fingerprint} on shop",
                "severity": "SEV2",
                "kind": "performance",
                "alertname": "PostgresqlDeadLocks",
                **data,
            },
        )

    open_one = incident("Deadlocks", "investigating")
    alert_event(open_one, "fp-deadlocks", "firing", 0, target_id=target.pk)
    alert_event(open_one, "fp-deadlocks", "resolved", 5, target_id=target.pk)
    alert_event(open_one, "fp-unknown", "firing", 7, target_id=None, target_hint="far:9187")
    closed = incident("Old one", "closed")
    alert_event(closed, "fp-old", "firing", 0, target_id=target.pk)
    run = get("diagnostics", "DiagnosticRun").objects.create(
        target=target,
        trigger="monitor",
        suite={"keys": ["connections"]},
        status="succeeded",
        queued_at=NOW,
        finished_at=NOW,
        deadline=NOW,
    )
    return {"open": open_one.pk, "closed": closed.pk, "target": target.pk, "run": run.pk}


def test_open_incidents_keep_their_alerts_and_finished_monitor_runs_stay_judged():
    head = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        executor = _migrate(BEFORE)
        ids = _fill(executor.loader.project_state([n for n in head if n[0] != "detection"]).apps)
        executor = _migrate(head)
        apps = executor.loader.project_state(head).apps
        Alert, AlertGroup = (
            apps.get_model("detection", "Alert"),
            apps.get_model("detection", "AlertGroup"),
        )
        alerts = {a.fingerprint: a for a in Alert.objects.filter(incident_id=ids["open"])}
        assert set(alerts) == {"fp-deadlocks", "fp-unknown"}
        deadlocks = alerts["fp-deadlocks"]
        assert (deadlocks.status, deadlocks.recorded_status) == ("resolved", "resolved")
        assert deadlocks.first_seen_at == NOW
        assert deadlocks.last_seen_at == NOW + datetime.timedelta(minutes=5)
        assert deadlocks.target_id == ids["target"]
        assert alerts["fp-unknown"].target_hint == "far:9187"
        groups = dict(AlertGroup.objects.filter(is_open=True).values_list("key", "incident_id"))
        assert groups == {
            f"target:{ids['target']}": ids["open"],
            "fingerprint:fp-unknown:performance": ids["open"],
        }
        assert not Alert.objects.filter(incident_id=ids["closed"]).exists()
        judgement = apps.get_model("detection", "MonitorJudgement").objects.get(
            diagnostic_run_id=ids["run"]
        )
        assert judgement.evaluated_at == NOW
    finally:
        _migrate(head)  # leave the database at head for the tests that follow
