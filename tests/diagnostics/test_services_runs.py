"""Runs: start, execute once, sweep, fan-out, timeline summary, comparison, incident links."""

import datetime
import threading

import pytest
from django.db import connection
from django.utils import timezone

from diagnostics import pipeline, selectors, services, tasks
from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget
from incidents.models import EventKind
from incidents.services import incident_declare, incident_transition
from tests.diagnostics.d2_fixtures import TEST_SUITE
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db


def _declare(responder, title="Checkout slow"):
    return incident_declare(title=title, severity="SEV2", actor=responder)


def test_start_creates_a_queued_run_and_enqueues_only_after_commit(
    live_target, test_checks, sent_runs, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
        assert sent_runs == []  # nothing is sent inside the transaction
    assert run.status == "queued" and run.deadline > run.queued_at and run.celery_task_id
    for cb in callbacks:
        cb()
    assert sent_runs == [[run.pk]]


def test_start_refuses_unknown_keys_family_and_disabled_target(live_target, test_checks):
    with pytest.raises(services.DiagnosticsError) as exc:
        services.diagnostic_run_start(target_id=live_target.pk, suite={"keys": ["nope"]})
    assert exc.value.field == "keys" and "nope" in str(exc.value)
    with pytest.raises(services.DiagnosticsError) as exc:
        services.diagnostic_run_start(target_id=live_target.pk, suite={"family": "astrology"})
    assert exc.value.field == "family"
    services.target_update(target_id=live_target.pk, enabled=False)
    with pytest.raises(services.DiagnosticsError) as exc:
        services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    assert exc.value.field == "target"
    assert DiagnosticRun.objects.count() == 0


def test_second_start_while_active_returns_the_same_run(live_target, test_checks, sent_runs):
    first = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    second = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    assert first.pk == second.pk and DiagnosticRun.objects.count() == 1


def test_task_delivered_twice_runs_once(live_target, test_checks, markers, sent_runs):
    markers.set("a")
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    tasks.run_diagnostics.apply(args=[run.pk], task_id="first")
    tasks.run_diagnostics.apply(args=[run.pk], task_id="second")
    run.refresh_from_db()
    assert run.status == "succeeded"
    assert run.celery_task_id == "first"
    assert CheckResult.objects.filter(run=run).count() == 2
    assert run.worst_status == "warning"
    result = run.results.get(key="d2_test_markers")
    assert result.findings == [{"name": "a", "size": 1}]
    assert result.title == "Test markers" and result.family == "changes"


@pytest.mark.django_db(transaction=True)
def test_concurrent_deliveries_claim_the_run_once(live_target, test_checks, sent_runs):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    outcomes = []

    def deliver():
        try:
            outcomes.append(services.diagnostic_run_execute(run_id=run.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(1 for o in outcomes if o is not None) == 1
    assert CheckResult.objects.filter(run=run).count() == 2


def test_unreachable_target_gives_error_results_quickly(test_checks, sent_runs, settings):
    settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S = 2
    target = make_target(name="closed-port", port=1, password="pw-never-shown")
    run = services.diagnostic_run_start(target_id=target.pk, suite=TEST_SUITE)
    started = timezone.now()
    services.diagnostic_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (timezone.now() - started).total_seconds() < 5
    assert run.status == "succeeded"
    assert set(run.results.values_list("status", flat=True)) == {"error"}
    assert all("pw-never-shown" not in r.error for r in run.results.all())
    assert selectors.connection_status(run, list(run.results.all())) in ("unreachable", "unknown")


def test_undecryptable_secret_fails_the_run_with_a_clear_message(
    live_target, test_checks, sent_runs, settings
):
    from cryptography.fernet import Fernet

    services.target_update(target_id=live_target.pk, password="pw-xyz")
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    settings.QUELL_FERNET_KEYS = [Fernet.generate_key().decode()]
    services.diagnostic_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "QUELL_FERNET_KEYS" in run.error


def test_sweep_requeues_a_stuck_queued_run_once_then_fails_it(
    responder, live_target, test_checks, sent_runs
):
    incident = _declare(responder)
    run = services.diagnostic_run_start(
        target_id=live_target.pk, incident_id=incident.pk, suite=TEST_SUITE
    )
    later = run.deadline + datetime.timedelta(seconds=1)
    assert services.diagnostic_runs_sweep(now=later) == {"requeued": 1, "failed": 0}
    run.refresh_from_db()
    assert run.status == "queued" and run.requeues == 1 and run.deadline > later
    assert services.diagnostic_runs_sweep(now=later) == {"requeued": 0, "failed": 0}
    much_later = run.deadline + datetime.timedelta(seconds=1)
    assert services.diagnostic_runs_sweep(now=much_later) == {"requeued": 0, "failed": 1}
    run.refresh_from_db()
    assert run.status == "failed" and "past its deadline" in run.error
    event = incident.timeline.get(kind=EventKind.DIAGNOSTIC_RUN)
    assert "failed" in event.message and event.data["run_id"] == run.pk


def test_sweep_takes_over_a_stuck_running_run_and_late_results_are_discarded(
    live_target, test_checks, sent_runs
):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    claimed, token = pipeline.claim(services.DIAGNOSTIC_RUNS, run.pk, "worker-1")
    assert claimed.status == "running"
    claimed.refresh_from_db()
    services.diagnostic_runs_sweep(now=claimed.deadline + datetime.timedelta(seconds=1))
    run.refresh_from_db()
    assert run.status == "queued" and run.requeues == 1
    # The first worker comes back late: its results must not be mixed in.
    late = pipeline.finish(services.DIAGNOSTIC_RUNS, claimed, token=token, rows=[])
    assert late is None
    services.diagnostic_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "succeeded" and run.results.count() == 2


def test_fan_out_runs_every_enabled_target_of_an_environment_in_parallel_tasks(
    target_dbname, test_checks, eager_celery, django_capture_on_commit_callbacks
):
    a = make_target(name="eu-1", database=target_dbname, tags=["eu"])
    b = make_target(name="eu-2", database=target_dbname, tags=["eu"])
    make_target(name="stage", environment="staging", database=target_dbname, tags=["eu"])
    make_target(name="off", database=target_dbname, enabled=False)
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.diagnostic_runs_fan_out(environment="production", suite=TEST_SUITE)
    assert sorted(r.target_id for r in runs) == sorted([a.pk, b.pk])
    statuses = set(DiagnosticRun.objects.values_list("status", flat=True))
    assert statuses == {"succeeded"}
    with django_capture_on_commit_callbacks(execute=True):
        tagged = services.diagnostic_runs_fan_out(tag="EU", suite=TEST_SUITE)
    assert len(tagged) == 3


def test_fan_out_needs_a_selection_that_matches(live_target, test_checks, sent_runs):
    with pytest.raises(services.DiagnosticsError) as exc:
        services.diagnostic_runs_fan_out(suite=TEST_SUITE)
    assert exc.value.field == "targets"
    with pytest.raises(services.DiagnosticsError):
        services.diagnostic_runs_fan_out(tag="nowhere", suite=TEST_SUITE)


def test_linking_a_target_to_an_open_incident_starts_a_run_and_summarises_it_on_the_timeline(
    responder,
    live_target,
    test_checks,
    markers,
    eager_celery,
    django_capture_on_commit_callbacks,
    settings,
):
    markers.set("a", "b", "c")  # three markers: critical
    incident = _declare(responder)
    with django_capture_on_commit_callbacks(execute=True):
        services.incident_target_add(
            incident_id=incident.pk, target_id=live_target.pk, actor=responder
        )
    run = DiagnosticRun.objects.get(incident=incident)
    assert run.trigger == "incident" and run.status == "succeeded"
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == ["declared", "fields_changed", "diagnostic_run"]
    event = incident.timeline.get(kind=EventKind.DIAGNOSTIC_RUN)
    assert event.data["worst_status"] == "critical"  # three markers (and the whole suite ran)
    marker_finding = next(f for f in event.data["findings"] if f["key"] == "d2_test_markers")
    assert marker_finding["status"] == "critical"
    assert marker_finding["rows"][0] == {"name": "a", "size": 1}
    assert event.data["url"].startswith(settings.QUELL_BASE_URL)
    assert f"/diagnostics/runs/{run.pk}/" in event.message
    assert "CRITICAL" in event.message


def test_linking_twice_is_idempotent_and_removing_records_an_event(
    responder, live_target, sent_runs
):
    incident = _declare(responder)
    services.incident_target_add(incident_id=incident.pk, target_id=live_target.pk, start_run=False)
    services.incident_target_add(incident_id=incident.pk, target_id=live_target.pk, start_run=False)
    assert IncidentTarget.objects.filter(incident=incident).count() == 1
    services.incident_target_remove(incident_id=incident.pk, target_id=live_target.pk)
    assert not IncidentTarget.objects.filter(incident=incident).exists()
    messages = list(incident.timeline.values_list("message", flat=True))
    assert messages[-1] == f"Affected target removed: {live_target.name}"
    with pytest.raises(services.DiagnosticsError):
        services.incident_target_remove(incident_id=incident.pk, target_id=live_target.pk)


def test_linking_to_a_resolved_incident_does_not_start_a_run(responder, live_target, sent_runs):
    incident = _declare(responder)
    incident_transition(incident_id=incident.pk, to_status="resolved", actor=responder)
    services.incident_target_add(incident_id=incident.pk, target_id=live_target.pk)
    assert not DiagnosticRun.objects.exists()


def test_declare_with_targets_links_each_and_queues_a_run_at_detection(
    responder, live_target, test_checks, sent_runs, django_capture_on_commit_callbacks
):
    other = make_target(name="replica")
    with django_capture_on_commit_callbacks(execute=True):
        incident, runs = services.incident_declare_with_targets(
            target_ids=[live_target.pk, other.pk],
            title="Replica lag",
            severity="SEV2",
            actor=responder,
        )
    assert sorted(r.target_id for r in runs) == sorted([live_target.pk, other.pk])
    assert all(r.incident_id == incident.pk and r.trigger == "incident" for r in runs)
    assert sorted(i for ids in sent_runs for i in ids) == sorted(r.pk for r in runs)


def test_declare_with_unknown_target_declares_nothing(responder):
    from incidents.models import Incident

    with pytest.raises(services.DiagnosticsError) as exc:
        services.incident_declare_with_targets(
            target_ids=[999999], title="x", severity="SEV2", actor=responder
        )
    assert exc.value.field == "affected_targets"
    assert not Incident.objects.exists()


def test_summary_is_empty_without_runs_and_lists_findings_after_one(
    responder, live_target, test_checks, markers, sent_runs
):
    incident = _declare(responder)
    services.incident_target_add(incident_id=incident.pk, target_id=live_target.pk, start_run=False)
    (t,) = selectors.incident_diagnostics_summary(incident_id=incident.pk)["targets"]
    assert t["name"] == live_target.name and t["run_id"] is None and t["findings"] == []
    run = services.diagnostic_run_start(
        target_id=live_target.pk, incident_id=incident.pk, suite=TEST_SUITE
    )
    summary = selectors.incident_diagnostics_summary(incident_id=incident.pk)
    (t,) = summary["targets"]
    assert t["run_id"] == run.pk and t["run_status"] == "queued"
    assert t["findings"] == [] and t["metrics"] == {}
    assert "diagnostics queued" in summary["text"]
    markers.set("x")
    services.diagnostic_run_execute(run_id=run.pk)
    summary = selectors.incident_diagnostics_summary(incident_id=incident.pk)
    (t,) = summary["targets"]
    assert t["worst_status"] == "warning" and summary["worst_status"] == "warning"
    assert t["findings"][0]["summary"] == "1 marker(s)"
    assert t["counts"] == {"ok": 1, "warning": 1} and t["error_count"] == 0
    assert "xact_commit" in t["metrics"]["d2_test_counters"]
    assert t["url"].endswith(f"/diagnostics/runs/{t['run_id']}/")
    assert "Test markers: 1 marker(s)" in summary["text"]


def test_summary_for_a_target_without_any_run_has_empty_values(responder, sent_runs):
    incident = _declare(responder)
    target = make_target(name="never-run", enabled=False)
    services.incident_target_add(incident_id=incident.pk, target_id=target.pk)
    (t,) = selectors.incident_diagnostics_summary(incident_id=incident.pk)["targets"]
    assert t["run_id"] is None and t["worst_status"] == "" and t["url"] == ""
    assert t["findings"] == [] and t["metrics"] == {} and t["counts"] == {}


def _run_with(target, at, results):
    run = DiagnosticRun.objects.create(
        target=target,
        status="succeeded",
        queued_at=at,
        started_at=at,
        finished_at=at,
        deadline=at,
        worst_status="warning",
    )
    for key, status, findings, metrics in results:
        CheckResult.objects.create(
            run=run,
            key=key,
            title=key,
            family="x",
            status=status,
            findings=findings,
            metrics=metrics,
        )
    return run


def test_compare_reports_appeared_cleared_and_counter_rates(live_target):
    t0 = timezone.now() - datetime.timedelta(seconds=100)
    before = _run_with(
        live_target,
        t0,
        [
            ("locks", "critical", [{"pid": 1, "wait_s": 30}, {"pid": 2, "wait_s": 10}], {}),
            ("errors", "ok", [], {"deadlocks": 10, "temp_files": 4}),
        ],
    )
    after = _run_with(
        live_target,
        t0 + datetime.timedelta(seconds=50),
        [
            ("locks", "warning", [{"pid": 2, "wait_s": 60}, {"pid": 3, "wait_s": 1}], {}),
            ("errors", "warning", [], {"deadlocks": 35, "temp_files": 4}),
        ],
    )
    # Order does not matter: "before" is the earlier run.
    cmp = selectors.run_compare(base_run_id=after.pk, head_run_id=before.pk)
    assert cmp["base"]["id"] == before.pk and cmp["seconds_between"] == 50
    locks = next(c for c in cmp["checks"] if c["key"] == "locks")
    assert locks["appeared"] == [{"pid": 3, "wait_s": 1}]
    assert locks["cleared"] == [{"pid": 1, "wait_s": 30}]
    assert locks["changed"] == [
        {"before": {"pid": 2, "wait_s": 10}, "after": {"pid": 2, "wait_s": 60}}
    ]
    assert locks["status_before"] == "critical" and locks["status_after"] == "warning"
    errors = next(c for c in cmp["checks"] if c["key"] == "errors")
    deadlocks = next(m for m in errors["metrics"] if m["name"] == "deadlocks")
    assert deadlocks["delta"] == 25 and deadlocks["per_second"] == pytest.approx(0.5)
    temp = next(m for m in errors["metrics"] if m["name"] == "temp_files")
    assert temp["delta"] == 0 and temp["per_second"] == 0
    assert cmp["status_changes"] == ["locks", "errors"]


def test_compare_refuses_runs_of_different_targets(live_target):
    other = make_target(name="other")
    now = timezone.now()
    a = _run_with(live_target, now, [])
    b = _run_with(other, now, [])
    with pytest.raises(services.DiagnosticsError) as exc:
        selectors.run_compare(base_run_id=a.pk, head_run_id=b.pk)
    assert exc.value.field == "head"


def test_target_with_runs_cannot_be_deleted(live_target):
    _run_with(live_target, timezone.now(), [])
    with pytest.raises(services.TargetInUse):
        services.target_delete(target_id=live_target.pk)


def test_results_with_dates_decimals_and_odd_values_are_stored_as_json(live_target):
    from decimal import Decimal

    from diagnostics.checks.base import CheckOutcome, CheckStatus
    from diagnostics.runner import CheckExecution

    run = DiagnosticRun.objects.create(
        target=live_target, queued_at=timezone.now(), deadline=timezone.now()
    )
    claimed, token = pipeline.claim(services.DIAGNOSTIC_RUNS, run.pk)
    outcome = CheckOutcome(
        CheckStatus.WARNING,
        "odd values",
        findings=[
            {
                "at": datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC),
                "size": Decimal("1.5"),
                "age": datetime.timedelta(seconds=90),
                "thing": ValueError("not json"),
            }
        ],
        metrics={"ratio": Decimal("0.99")},
    )
    rows = services.result_rows(claimed, [CheckExecution("odd", outcome, 1.0)])
    pipeline.finish(services.DIAGNOSTIC_RUNS, claimed, token=token, rows=rows)
    row = CheckResult.objects.get(run=run).findings[0]
    assert row["at"] == "2026-01-02T03:04:05Z" and row["size"] == 1.5
    assert row["age"] == "P0DT00H01M30S" and row["thing"] == "not json"
    assert CheckResult.objects.get(run=run).metrics == {"ratio": 0.99}
    run.refresh_from_db()
    assert run.status == "succeeded" and run.worst_status == "warning"


def test_a_run_stopped_by_the_soft_time_limit_fails_with_a_clear_message(
    live_target, test_checks, sent_runs, monkeypatch
):
    from celery.exceptions import SoftTimeLimitExceeded

    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()  # what Celery raises in the task at the soft limit

    monkeypatch.setattr("diagnostics.runner.run_checks", too_slow)
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    services.diagnostic_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == "failed" and "time limit" in run.error


def test_fan_out_keeps_a_target_s_active_run_and_sends_only_new_ones(
    target_dbname, test_checks, sent_runs, django_capture_on_commit_callbacks
):
    a = make_target(name="eu-1", database=target_dbname, tags=["eu"])
    make_target(name="eu-2", database=target_dbname, tags=["eu"])
    with django_capture_on_commit_callbacks(execute=True):
        busy = services.diagnostic_run_start(target_id=a.pk, suite=TEST_SUITE)
    with django_capture_on_commit_callbacks(execute=True):
        runs = services.diagnostic_runs_fan_out(tag="eu", suite=TEST_SUITE)
    assert busy.pk in [r.pk for r in runs] and len(runs) == 2
    fresh = next(r for r in runs if r.pk != busy.pk)
    assert sent_runs == [[busy.pk], [fresh.pk]]


def test_compare_reads_a_check_s_unnamed_summary_row_as_a_change_not_a_new_finding(
    live_target,
):
    t0 = timezone.now() - datetime.timedelta(seconds=10)
    before = _run_with(
        live_target,
        t0,
        [("connection", "ok", [{"connect_ms": 4.1, "samples_ms": [0.3, 0.4]}], {})],
    )
    after = _run_with(
        live_target,
        t0 + datetime.timedelta(seconds=5),
        [("connection", "ok", [{"connect_ms": 3.6, "samples_ms": [0.2, 0.5]}], {})],
    )
    (check,) = selectors.run_compare(base_run_id=before.pk, head_run_id=after.pk)["checks"]
    assert check["appeared"] == [] and check["cleared"] == []
    assert check["changed"][0]["after"]["connect_ms"] == 3.6


def test_compare_keeps_other_databases_sessions_apart(live_target):
    t0 = timezone.now() - datetime.timedelta(seconds=100)
    mine = {"pid": 10, "database": "orders", "scope": "target"}
    elsewhere = {"pid": 20, "database": "reports", "scope": "other_database"}
    before = _run_with(live_target, t0, [("idle_in_transaction", "ok", [], {})])
    after = _run_with(
        live_target,
        t0 + datetime.timedelta(seconds=10),
        [("idle_in_transaction", "warning", [mine, elsewhere], {})],
    )
    cmp = selectors.run_compare(base_run_id=before.pk, head_run_id=after.pk)
    [idle] = cmp["checks"]
    assert idle["appeared"] == [mine]  # the target's own only
    assert idle["other_databases"]["appeared"] == [elsewhere]
    assert cmp["appeared_count"] == 1
