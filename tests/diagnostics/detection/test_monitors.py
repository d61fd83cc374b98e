"""Monitors: sweeps, the run task's hook, rules over check results, dedup with alerts."""

from __future__ import annotations

import datetime

import pytest
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import timezone

from config.celery import app
from diagnostics import services, tasks
from diagnostics.detection import monitors
from diagnostics.detection import tasks as detection_tasks
from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget
from diagnostics.services import DiagnosticsError
from incidents.models import EventKind, Incident, Status, TimelineEvent
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _clean(settings, monkeypatch):
    settings.QUELL_DETECTION_REPEAT_WINDOW_S = 3600
    settings.QUELL_COMMS_NOTIFY_ON_DECLARE = False
    settings.QUELL_MONITOR_RULES = {}
    cache.clear()


@pytest.fixture
def sent(monkeypatch):
    """Run ids the services enqueue (after commit), recorded instead of sent."""
    ids: list[int] = []
    monkeypatch.setattr(
        "diagnostics.services._enqueue", lambda pairs: ids.extend(p[0] for p in pairs)
    )
    return ids


@pytest.fixture
def target(db):
    return make_target(name="orders-primary", host="db1.internal", database="orders")


_ago = iter(range(10_000, 0, -10))


def monitor_run(target, results: dict[str, tuple[str, dict]], *, status="succeeded", when=None):
    """A finished monitoring run with results {key: (status, {summary/metrics/error/...})}."""
    now = when or timezone.now() - datetime.timedelta(seconds=next(_ago) / 1000)
    run = DiagnosticRun.objects.create(
        target=target,
        trigger="monitor",
        suite={"keys": list(results)},
        status=status,
        queued_at=now,
        started_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=10),
        worst_status="ok",
    )
    for key, (result_status, extra) in results.items():
        CheckResult.objects.create(
            run=run,
            key=key,
            title=extra.get("title", key.replace("_", " ").capitalize()),
            family=extra.get("family", "activity"),
            status=result_status,
            summary=extra.get("summary", f"{key} is {result_status}"),
            findings=extra.get("findings", [{"row": 1}]),
            metrics=extra.get("metrics", {}),
            error=extra.get("error", ""),
        )
    return run


def alert_events(incident):
    return list(
        TimelineEvent.objects.filter(incident=incident, kind=EventKind.ALERT).order_by("id")
    )


# --- breaches ---------------------------------------------------------------------------------


def test_connections_near_max_declares_performance_incident_with_target(target, sent):
    run = monitor_run(target, {"connections": ("warning", {"summary": "92 of 97 usable (94.8 %)"})})
    outcomes = monitors.monitor_run_evaluate(run_id=run.pk)
    assert [o["action"] for o in outcomes] == ["declared"]
    incident = Incident.objects.get()
    assert (incident.kind, incident.severity) == ("performance", "SEV3")
    assert incident.detection_source == "monitor" and incident.detected_by == "monitor/default"
    assert IncidentTarget.objects.filter(incident=incident, target=target).exists()
    # Evidence at detection: a full diagnostic run linked to the incident is queued.
    assert DiagnosticRun.objects.filter(incident=incident, trigger="incident").exists()
    (event,) = alert_events(incident)
    assert event.actor_label == "monitor"
    assert event.data["rule"] == "connections" and event.data["run_id"] == run.pk
    assert "94.8 %" in event.message and event.data["run_url"].endswith(f"/runs/{run.pk}/")


def test_persistent_breach_opens_no_second_incident_and_is_recorded_once_per_window(
    target, settings
):
    breach = {"long_running_queries": ("critical", {"summary": "1 query running 40 min"})}
    monitors.monitor_run_evaluate(run_id=monitor_run(target, breach).pk)
    again = monitors.monitor_run_evaluate(run_id=monitor_run(target, breach).pk)
    assert [o["action"] for o in again] == ["repeated"]
    incident = Incident.objects.get()
    assert incident.severity == "SEV2"
    assert len(alert_events(incident)) == 1
    settings.QUELL_DETECTION_REPEAT_WINDOW_S = 0
    later = monitors.monitor_run_evaluate(run_id=monitor_run(target, breach).pk)
    assert [(o["action"], o["repeats"]) for o in later] == [("appended", 1)]
    assert Incident.objects.count() == 1 and len(alert_events(incident)) == 2


def test_several_breaches_of_one_kind_make_one_incident_at_the_worst_severity(target):
    run = monitor_run(
        target,
        {
            "long_running_queries": ("warning", {}),
            "blocking_locks": ("critical", {"summary": "12 sessions blocked"}),
        },
    )
    outcomes = monitors.monitor_run_evaluate(run_id=run.pk)
    assert sorted(o["action"] for o in outcomes) == ["appended", "declared"]
    incident = Incident.objects.get()
    assert incident.severity == "SEV2"
    assert [e.data["rule"] for e in alert_events(incident)] == [
        "blocking_locks",
        "long_running_queries",
    ]


def test_unreachable_and_slow_in_one_run_make_one_incident_at_the_worst_severity(target):
    run = monitor_run(
        target,
        {
            "connection": (
                "critical",
                {
                    "summary": "target unreachable",
                    "error": "connection refused",
                    "family": "connection",
                },
            ),
            "connections": ("critical", {}),
        },
    )
    outcomes = monitors.monitor_run_evaluate(run_id=run.pk)
    # One run's judgement of one target is one delivery: one incident, declared by the worst.
    assert [o["action"] for o in outcomes] == ["declared", "appended"]
    incident = Incident.objects.get()
    assert (incident.kind, incident.severity) == ("availability", "SEV1")
    assert sorted(incident.alerts.values_list("name", "status")) == [
        ("connection", "firing"),
        ("connections", "firing"),
    ]


def test_recovery_is_noted_once_and_never_resolves(target):
    monitors.monitor_run_evaluate(run_id=monitor_run(target, {"connections": ("warning", {})}).pk)
    healthy = {"connections": ("ok", {})}
    first = monitors.monitor_run_evaluate(run_id=monitor_run(target, healthy).pk)
    second = monitors.monitor_run_evaluate(run_id=monitor_run(target, healthy).pk)
    assert [o["action"] for o in first] == ["resolved"] and second == []
    incident = Incident.objects.get()
    assert incident.status == Status.INVESTIGATING
    events = alert_events(incident)
    assert len(events) == 2 and "back within thresholds" in events[1].message


def test_healthy_results_do_nothing(target):
    run = monitor_run(
        target,
        {
            "connection": ("ok", {"family": "connection"}),
            "connections": ("ok", {}),
            "blocking_locks": ("ok", {}),
            "slow_queries": ("warning", {}),  # below the slow-query rule's "critical"
            "long_running_queries": ("error", {"error": "timed out"}),  # unknown, not a breach
        },
    )
    assert monitors.monitor_run_evaluate(run_id=run.pk) == []
    assert not Incident.objects.exists() and not TimelineEvent.objects.exists()


def test_new_deadlocks_since_previous_sweep_are_a_breach(target):
    monitor_run(target, {"database_errors": ("ok", {"metrics": {"deadlocks": 5.0}})})
    same = monitor_run(target, {"database_errors": ("ok", {"metrics": {"deadlocks": 5.0}})})
    assert monitors.monitor_run_evaluate(run_id=same.pk) == []
    more = monitor_run(target, {"database_errors": ("warning", {"metrics": {"deadlocks": 7.0}})})
    (outcome,) = monitors.monitor_run_evaluate(run_id=more.pk)
    assert outcome["action"] == "declared"
    event = alert_events(Incident.objects.get())[0]
    assert event.data["rule"] == "deadlocks" and "2 new deadlocks" in event.message


def test_checksum_failures_are_a_data_integrity_sev1(target):
    run = monitor_run(
        target, {"database_errors": ("critical", {"metrics": {"checksum_failures": 3.0}})}
    )
    monitors.monitor_run_evaluate(run_id=run.pk)
    incident = Incident.objects.get()
    assert (incident.kind, incident.severity) == ("data_integrity", "SEV1")


def test_target_thresholds_override_the_rules(target):
    services.target_update(
        target_id=target.pk, thresholds={"monitor": {"connections": {"enabled": False}}}
    )
    target.refresh_from_db()
    run = monitor_run(target, {"connections": ("critical", {})})
    assert monitors.monitor_run_evaluate(run_id=run.pk) == []
    services.target_update(
        target_id=target.pk,
        thresholds={
            "monitor": {"connections": {"at": "critical", "severity": {"critical": "SEV1"}}}
        },
    )
    target.refresh_from_db()
    monitors.monitor_run_evaluate(run_id=monitor_run(target, {"connections": ("warning", {})}).pk)
    assert not Incident.objects.exists()
    monitors.monitor_run_evaluate(run_id=monitor_run(target, {"connections": ("critical", {})}).pk)
    assert Incident.objects.get().severity == "SEV1"


def test_monitor_breach_joins_an_open_alert_incident_of_the_same_target_and_kind(target):
    from diagnostics.detection.services import Signal, signal_ingest

    alert = Signal(
        source="alertmanager",
        fingerprint="am-1",
        status="firing",
        title="PostgresTooManyConnections",
        severity="SEV2",
        kind="performance",
        target=target,
    )
    declared = signal_ingest(signal=alert)
    (outcome,) = monitors.monitor_run_evaluate(
        run_id=monitor_run(target, {"connections": ("warning", {})}).pk
    )
    assert outcome["action"] == "appended" and outcome["incident_id"] == declared.incident_id


def test_a_run_is_judged_once_and_failed_runs_not_at_all(target):
    run = monitor_run(target, {"connections": ("warning", {})})
    assert monitors.monitor_run_evaluate(run_id=run.pk)
    assert monitors.monitor_run_evaluate(run_id=run.pk) == []
    failed = monitor_run(target, {}, status="failed")
    assert monitors.monitor_run_evaluate(run_id=failed.pk) == []
    manual = monitor_run(target, {"connections": ("critical", {})})
    DiagnosticRun.objects.filter(pk=manual.pk).update(trigger="manual")
    assert monitors.monitor_run_evaluate(run_id=manual.pk) == []
    assert Incident.objects.count() == 1


def test_rules_are_validated():
    with pytest.raises(DiagnosticsError, match="kind"):
        monitors.effective_rules(monitor_rules={"connections": {"kind": "weather"}})
    with pytest.raises(DiagnosticsError, match="names no check"):
        monitors.effective_rules(monitor_rules={"no_such_check": {}})
    with pytest.raises(DiagnosticsError, match="SEV1-SEV4"):
        monitors.effective_rules(monitor_rules={"blocking_locks": {"severity": {"warning": "P1"}}})
    # A rule for another registered check adds it to the monitoring suite.
    rules = monitors.effective_rules(monitor_rules={"replication_lag": {"at": "critical"}})
    assert "replication_lag" in monitors.suite_keys(rules)
    assert rules["replication_lag"]["kind"] == "performance"


# --- the sweep and the task hook ---------------------------------------------------------------


def test_sweep_starts_monitor_runs_on_enabled_targets_of_a_tag(
    sent, django_capture_on_commit_callbacks
):
    eu = make_target(name="eu-1", tags=["eu"])
    make_target(name="us-1", tags=["us"])
    make_target(name="eu-off", tags=["eu"], enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        counts = monitors.monitor_sweep(
            name="eu-watch", tag="eu", rules={"slow_queries": {"enabled": False}}
        )
    assert counts["started"] == 1
    run = DiagnosticRun.objects.get()
    assert (run.target_id, run.trigger) == (eu.pk, "monitor") and sent == [run.pk]
    assert "connection" in run.suite["keys"] and "slow_queries" not in run.suite["keys"]
    assert "database_errors" in run.suite["keys"]
    # A second sweep while the run is still queued keeps that run.
    monitors.monitor_sweep(name="eu-watch", tag="eu", rules={"slow_queries": {"enabled": False}})
    assert DiagnosticRun.objects.count() == 1


def test_sweep_refuses_bad_rules(target):
    with pytest.raises(DiagnosticsError):
        monitors.monitor_sweep(rules={"connections": {"at": "sometimes"}})


def test_losing_the_cache_changes_no_judgement(target, sent):
    """Which monitor started a run, its rules and whether it was judged are columns now (they
    were cache entries with a 2-day TTL: a flush judged runs twice, by the default rules)."""
    strict = {"connections": {"at": "warning", "severity": {"warning": "SEV1"}}}
    monitors.monitor_sweep(name="strict", targets=[target.name], rules=strict)
    run = DiagnosticRun.objects.get()
    DiagnosticRun.objects.filter(pk=run.pk).update(status="succeeded", finished_at=timezone.now())
    CheckResult.objects.create(
        run=run,
        key="connections",
        title="Connections",
        family="activity",
        status="warning",
        summary="82 % of max_connections",
        findings=[],
        metrics={},
    )
    cache.clear()
    [outcome] = monitors.monitor_run_evaluate(run_id=run.pk)
    assert Incident.objects.get(pk=outcome["incident_id"]).severity == "SEV1"  # its own rules
    cache.clear()
    assert monitors.monitor_run_evaluate(run_id=run.pk) == []  # judged once
    assert monitors.monitor_sweep(targets=["nothing-matches"])["judged"] == 0
    run.monitor_judgement.refresh_from_db()
    assert run.monitor_judgement.evaluated_at is not None


def test_sweep_judges_finished_runs_whose_evaluation_was_lost(target):
    run = monitor_run(target, {"blocking_locks": ("critical", {})})
    counts = monitors.monitor_sweep(targets=["nothing-matches"])
    assert counts["judged"] == 1 and counts["started"] == 0
    assert Incident.objects.filter(kind="performance").count() == 1
    assert monitors.monitor_sweep(targets=["nothing-matches"])["judged"] == 0
    assert run.pk


def test_monitor_run_of_an_unreachable_target_opens_availability_sev1_end_to_end(
    closed_port, eager_celery
):
    host, port = closed_port
    down = make_target(name="down-db", host=host, port=port, database="postgres", user="postgres")
    monitors.monitor_sweep(name="default", targets=[down.pk])
    run = DiagnosticRun.objects.get(target=down, trigger="monitor")
    # The task a worker runs: checks, stored results, then the hook judges the run.
    tasks.run_diagnostics.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == "succeeded"
    incident = Incident.objects.get(kind="availability")
    assert incident.severity == "SEV1" and incident.detection_source == "monitor"
    assert IncidentTarget.objects.filter(incident=incident, target=down).exists()


def test_healthy_live_target_opens_nothing_end_to_end(live_target, eager_celery):
    monitors.monitor_sweep(targets=[live_target.name], keys=["connection", "database_errors"])
    run = DiagnosticRun.objects.get(target=live_target, trigger="monitor")
    tasks.run_diagnostics.apply(args=[run.pk])
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert not Incident.objects.exists()


def test_non_monitor_runs_are_not_judged(closed_port, eager_celery):
    host, port = closed_port
    down = make_target(name="down-manual", host=host, port=port, database="postgres", user="x")
    run = services.diagnostic_run_start(target_id=down.pk, suite={"keys": ["connection"]})
    tasks.run_diagnostics.apply(args=[run.pk])
    assert not Incident.objects.exists()


def test_monitor_tasks_are_registered_and_scheduled():
    app.loader.import_default_modules()
    assert {"diagnostics.monitor_sweep", "diagnostics.monitor_evaluate"} <= set(app.tasks)
    entry = django_settings.CELERY_BEAT_SCHEDULE["diagnostics-monitor"]
    assert entry["task"] == "diagnostics.monitor_sweep"
    assert entry["schedule"] == django_settings.QUELL_MONITOR_INTERVAL_S > 0


# --- integrity ----------------------------------------------------------------------------------


def _integrity_run(target, *, violated: bool, severity="critical"):
    from diagnostics.integrity.models import IntegrityCheck, IntegrityResult, IntegrityRun

    check, _ = IntegrityCheck.objects.get_or_create(
        target=target,
        name="orders have customers",
        defaults={"kind": "orphans", "severity": severity, "table_name": "orders"},
    )
    now = timezone.now()
    run = IntegrityRun.objects.create(
        target=target,
        purpose="monitor",
        status="succeeded",
        queued_at=now,
        started_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=10),
        checks_total=1,
        checks_violated=int(violated),
    )
    IntegrityResult.objects.create(
        run=run,
        integrity_check=check,
        check_name=check.name,
        kind=check.kind,
        severity=check.severity,
        status="violation" if violated else "ok",
        count=4 if violated else 0,
    )
    return run


def test_integrity_violation_opens_data_integrity_incident_and_clean_run_notes_recovery(target):
    run = _integrity_run(target, violated=True)
    (outcome,) = monitors.integrity_run_evaluate(run_id=run.pk)
    assert outcome["action"] == "declared"
    incident = Incident.objects.get()
    assert (incident.kind, incident.severity) == ("data_integrity", "SEV1")
    event = alert_events(incident)[0]
    assert event.data["violations"] == [
        {"check": "orders have customers", "severity": "critical", "count": 4}
    ]
    clean = _integrity_run(target, violated=False)
    assert [o["action"] for o in monitors.integrity_run_evaluate(run_id=clean.pk)] == ["resolved"]
    assert Incident.objects.get().status == Status.INVESTIGATING


def test_sweep_starts_integrity_runs_when_due_and_judges_them_later(target, sent, monkeypatch):
    from diagnostics.integrity.models import IntegrityCheck, IntegrityRun

    monkeypatch.setattr("diagnostics.integrity.services._enqueue", lambda *a: None)
    IntegrityCheck.objects.create(
        target=target, name="orders counted", kind="row_count", table_name="orders", min_count=1
    )
    counts = monitors.monitor_sweep(targets=[target.name])
    assert counts["integrity_started"] == 1
    run = IntegrityRun.objects.get()
    assert (run.purpose, run.requested_by_id, run.incident_id) == ("monitor", None, None)
    assert (run.monitor_judgement.monitor, run.monitor_judgement.evaluated_at) == ("default", None)
    assert monitors.monitor_sweep(targets=[target.name])["integrity_started"] == 0
    assert monitors.monitor_sweep(targets=[target.name], integrity=False)["integrity_started"] == 0
    # Finished with a violation: the next sweep judges it.
    violated = _integrity_run(target, violated=True, severity="medium")
    assert monitors.monitor_sweep(targets=["nothing-matches"])["judged"] >= 1
    assert Incident.objects.get(kind="data_integrity").severity == "SEV3"
    assert violated.pk


def test_a_targets_bad_monitor_override_is_ignored_not_fatal(target):
    services.target_update(
        target_id=target.pk, thresholds={"monitor": {"connections": {"at": "x"}}}
    )
    target.refresh_from_db()
    monitors.monitor_run_evaluate(run_id=monitor_run(target, {"connections": ("warning", {})}).pk)
    assert Incident.objects.get().severity == "SEV3"


def test_sweep_task_takes_the_periodic_tasks_kwargs(target, sent):
    result = detection_tasks.monitor_sweep.apply(
        kwargs={"name": "prod", "environment": "production", "keys": ["connection"]}
    )
    assert result.successful() and result.get()["started"] == 1
    run = DiagnosticRun.objects.get()
    assert run.suite == {"keys": ["connection"]}
    judgement = run.monitor_judgement
    assert (judgement.monitor, judgement.rules, judgement.evaluated_at) == ("prod", {}, None)


def test_hook_survives_a_broker_outage(target, monkeypatch):
    import kombu.exceptions

    from diagnostics.detection import tasks as monitor_tasks
    from incidents import dispatch
    from incidents.models import ParkedTask

    def down(*args, **kwargs):
        raise kombu.exceptions.OperationalError("broker unreachable")

    monkeypatch.setattr(monitor_tasks.monitor_evaluate, "apply_async", down)
    run = monitor_run(target, {"connections": ("warning", {})})
    monitors.after_run(run)  # parked; the next sweep's catch-up judges the run meanwhile
    dispatch.reset_breaker()
    assert list(ParkedTask.objects.values_list("task", "args")) == [
        ("diagnostics.monitor_evaluate", [run.pk])
    ]
    assert monitors.monitor_sweep(targets=["nothing-matches"])["judged"] == 1
    assert Incident.objects.count() == 1


def test_old_monitor_runs_are_pruned_unless_an_incident_cites_them(target, settings):
    settings.QUELL_MONITOR_RETENTION_DAYS = 7
    old = timezone.now() - datetime.timedelta(days=8)
    healthy = monitor_run(target, {"connections": ("ok", {})}, when=old)
    cited = monitor_run(target, {"connections": ("warning", {})}, when=old)
    monitors.monitor_run_evaluate(run_id=cited.pk)
    recent = monitor_run(target, {"connections": ("ok", {})})
    manual = monitor_run(target, {"connections": ("ok", {})}, when=old)
    DiagnosticRun.objects.filter(pk=manual.pk).update(trigger="manual")
    assert detection_tasks.monitor_prune.apply().get() == {"runs": 1, "integrity_runs": 0}
    left = set(DiagnosticRun.objects.values_list("pk", flat=True))
    assert healthy.pk not in left and {cited.pk, recent.pk, manual.pk} <= left
    assert not CheckResult.objects.filter(run_id=healthy.pk).exists()
    settings.QUELL_MONITOR_RETENTION_DAYS = 0
    assert monitors.monitor_runs_prune() == {"runs": 0, "integrity_runs": 0}
    assert "diagnostics-monitor-prune" in django_settings.CELERY_BEAT_SCHEDULE


def test_beat_writes_the_builtin_monitor_to_the_admin_and_keeps_it_disabled_once_disabled():
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    entry = django_settings.CELERY_BEAT_SCHEDULE["diagnostics-monitor"]
    ModelEntry.from_entry("diagnostics-monitor", app=app, **entry)
    task = PeriodicTask.objects.get(name="diagnostics-monitor")
    assert task.task == "diagnostics.monitor_sweep" and task.enabled
    assert task.interval.every == django_settings.QUELL_MONITOR_INTERVAL_S
    assert task.expire_seconds == django_settings.QUELL_MONITOR_INTERVAL_S
    PeriodicTask.objects.filter(pk=task.pk).update(enabled=False)  # an admin disables it
    ModelEntry.from_entry("diagnostics-monitor", app=app, **entry)  # beat restarts
    assert PeriodicTask.objects.get(name="diagnostics-monitor").enabled is False
