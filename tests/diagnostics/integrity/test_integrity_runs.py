"""Integrity runs against a real planted database: counts, samples, baseline vs verification,
the timeline event, timeouts and read-only enforcement."""

import pytest

from diagnostics.integrity import services as integrity
from diagnostics.integrity.models import IntegrityResult, IntegrityRun
from diagnostics.integrity.selectors import incident_integrity_status
from incidents.models import EventKind
from tests.diagnostics.integrity.integrity_support import shop_sql
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def _run(target, **kwargs):
    run = integrity.integrity_run_start(target_id=target.pk, **kwargs)
    return integrity.integrity_run_execute(run_id=run.pk)


def _results(run):
    return {r.check_name: r for r in IntegrityResult.objects.filter(run=run)}


def test_playbook_checks_find_the_planted_problems(shop_target, shop_checks):
    run = _run(shop_target)
    assert run.status == "succeeded"
    r = _results(run)
    assert (r["orphaned profiles"].status, r["orphaned profiles"].count) == ("violation", 3)
    # Samples are primary keys only, in key order: profiles 6, 7 and 8 point at missing users.
    assert r["orphaned profiles"].sample_columns == ["id"]
    assert r["orphaned profiles"].sample == [[6], [7], [8]]
    dup = r["duplicate emails"]
    assert (dup.status, dup.count) == ("violation", 2)
    assert dup.metrics == {"rows": 5, "extra_rows": 3}
    assert dup.sample == [[3, [3, 4, 5]], [2, [1, 2]]]
    assert (r["users"].status, r["users"].count, r["users"].expected) == ("ok", 10, {"min": 1})
    assert (r["posts"].status, r["posts"].count) == ("ok", 8)
    assert (r["admin users"].status, r["admin users"].count) == ("violation", 0)
    rule = r["published posts without content"]
    assert (rule.status, rule.count, rule.sample) == ("violation", 3, [[5], [6], [7]])
    assert run.checks_total == 6 and run.checks_violated == 4 and run.checks_errored == 0
    assert "4 violations in 6 checks (1 critical)" in run.summary


def test_sample_is_capped(shop_target, shop_checks, settings):
    settings.QUELL_INTEGRITY_SAMPLE_ROWS = 2
    run = _run(shop_target, check_ids=[shop_checks["orphaned profiles"].pk])
    result = IntegrityResult.objects.get(run=run)
    assert result.count == 3 and result.sample == [[6], [7]]


def test_baseline_then_verification_shows_what_was_fixed(shop_db, shop_target, shop_checks):
    incident = IncidentFactory()
    baseline = _run(shop_target, purpose="baseline", incident_id=incident.pk)
    # Remediation: orphans removed, an admin restored, posts fixed; a new duplicate appears.
    shop_sql(
        shop_db,
        "DELETE FROM profiles WHERE user_id >= 100; UPDATE users SET role = 'ADMIN' WHERE id = 1;"
        "UPDATE posts SET title = 'Fixed', content = 'Fixed' WHERE id IN (5, 6, 7);"
        "INSERT INTO users (email) VALUES ('c@x.test'), ('c@x.test');",
    )
    verification = _run(shop_target, purpose="verification", incident_id=incident.pk)
    assert verification.baseline_id == baseline.pk
    from diagnostics.integrity.selectors import run_compare

    diff = {c["name"]: c for c in run_compare(verification)["checks"]}
    assert (diff["orphaned profiles"]["before"], diff["orphaned profiles"]["after"]) == (3, 0)
    assert diff["orphaned profiles"]["delta"] == -3
    assert diff["orphaned profiles"]["outcome"] == "fixed"
    assert diff["admin users"]["outcome"] == "fixed"
    assert diff["published posts without content"]["outcome"] == "fixed"
    assert (diff["duplicate emails"]["before"], diff["duplicate emails"]["after"]) == (2, 3)
    assert diff["duplicate emails"]["outcome"] == "worse"
    assert diff["users"]["outcome"] == "unchanged"  # it has a range: 10 -> 12 both pass
    assert (diff["posts"]["outcome"], diff["posts"]["delta"]) == ("unchanged", 0)
    assert "orphaned profiles 3 -> 0" in verification.summary
    assert "1 violation in 6 checks" in verification.summary
    events = list(incident.timeline.filter(kind=EventKind.INTEGRITY).order_by("id"))
    assert [e.data["purpose"] for e in events] == ["baseline", "verification"]
    last = events[-1]
    assert last.message.startswith("Integrity verification on shop-")
    assert "orphaned profiles 3 -> 0" in last.message
    assert last.data["ok"] is False and last.data["violations"] == 1
    assert last.data["baseline_run_id"] == baseline.pk
    assert {d["name"]: d["outcome"] for d in last.data["diff"]}["orphaned profiles"] == "fixed"
    status = incident_integrity_status(incident_id=incident.pk)
    assert status["ok"] is None  # the target is not linked to the incident: nothing to report


def test_statement_timeout_is_honoured_per_check(shop_target, settings):
    settings.QUELL_INTEGRITY_STATEMENT_TIMEOUT_MS = 200
    slow = integrity.integrity_check_create(
        target_id=shop_target.pk,
        name="slow",
        kind="business_rule",
        query="SELECT g FROM generate_series(1, 50000000) g WHERE g < 0",
    )
    quick = integrity.integrity_check_create(
        target_id=shop_target.pk, name="users", kind="row_count", table_name="users"
    )
    run = _run(shop_target)
    r = _results(run)
    assert r["slow"].status == "error" and "statement timeout (200 ms)" in r["slow"].error
    assert r["slow"].duration_ms < 3000
    # The session goes on after the cancelled check.
    assert (r["users"].status, r["users"].count) == ("ok", 10)
    assert run.status == "succeeded" and run.checks_errored == 1
    assert slow.pk and quick.pk


def test_checks_run_read_only_even_through_a_function(shop_db, shop_target):
    shop_sql(
        shop_db,
        "CREATE FUNCTION sneaky() RETURNS boolean LANGUAGE sql AS "
        "$$ INSERT INTO audit_log (note) VALUES ('written'); SELECT true $$",
    )
    # A predicate may not call the function (the allow-list) ...
    with pytest.raises(integrity.IntegrityCheckError, match="sneaky"):
        integrity.integrity_check_create(
            target_id=shop_target.pk,
            name="sneaky",
            kind="business_rule",
            table_name="users",
            predicate="sneaky()",
        )
    # ... but a view the target's owner defined can, and the read-only session still holds.
    shop_sql(shop_db, "CREATE VIEW sneaky_users AS SELECT * FROM users WHERE sneaky()")
    integrity.integrity_check_create(
        target_id=shop_target.pk, name="sneaky", kind="row_count", table_name="sneaky_users"
    )
    run = _run(shop_target)
    result = IntegrityResult.objects.get(run=run)
    assert result.status == "error" and "read-only transaction" in result.error
    with __import__("psycopg").connect(host="127.0.0.1", user="postgres", dbname=shop_db) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 2


def test_missing_table_and_unreachable_target_are_reported(shop_target, shop_checks):
    integrity.integrity_check_create(
        target_id=shop_target.pk, name="gone", kind="row_count", table_name="no_such_table"
    )
    run = _run(shop_target)
    gone = _results(run)["gone"]
    assert gone.status == "error" and "does not exist" in gone.error
    assert _results(run)["users"].count == 10  # the rest ran
    shop_target.port = 1
    shop_target.save()
    failed = _run(shop_target)
    assert failed.status == "failed" and "unreachable" in failed.error.lower()
    assert "failed" in failed.summary


def test_duplicate_start_returns_the_active_run_and_duplicate_delivery_is_ignored(
    shop_target, shop_checks
):
    first = integrity.integrity_run_start(target_id=shop_target.pk)
    again = integrity.integrity_run_start(target_id=shop_target.pk)
    assert again.pk == first.pk
    assert integrity.integrity_run_execute(run_id=first.pk).status == "succeeded"
    assert integrity.integrity_run_execute(run_id=first.pk) is None
    assert IntegrityResult.objects.filter(run=first).count() == 6


def test_run_is_enqueued_on_commit_and_executed_by_the_task(
    shop_target, shop_checks, django_capture_on_commit_callbacks, eager_celery
):
    with django_capture_on_commit_callbacks(execute=True):
        run = integrity.integrity_run_start(target_id=shop_target.pk, purpose="adhoc")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.checks_total == 6


def test_sweep_requeues_then_fails_stuck_runs(shop_target, shop_checks, monkeypatch):
    import datetime

    from django.utils import timezone

    sent = []
    monkeypatch.setattr(integrity, "_enqueue", lambda run_id, task_id: sent.append(run_id))
    run = integrity.integrity_run_start(target_id=shop_target.pk)
    past = timezone.now() - datetime.timedelta(hours=1)
    IntegrityRun.objects.filter(pk=run.pk).update(deadline=past)
    assert integrity.integrity_runs_sweep() == {"requeued": 1, "failed": 0}
    IntegrityRun.objects.filter(pk=run.pk).update(deadline=past)
    assert integrity.integrity_runs_sweep() == {"requeued": 0, "failed": 1}
    run.refresh_from_db()
    assert run.status == "failed" and "deadline" in run.error


def test_a_stuck_running_run_is_taken_over_and_its_late_results_discarded(
    shop_target, shop_checks, monkeypatch
):
    """Integrity runs go through the diagnostic runs' pipeline: same claim, sweep, ownership."""
    import datetime

    from diagnostics import pipeline

    monkeypatch.setattr(integrity, "_enqueue", lambda run_id, task_id: None)
    run = integrity.integrity_run_start(target_id=shop_target.pk)
    claimed, token = pipeline.claim(integrity.INTEGRITY_RUNS, run.pk, "worker-1")
    assert claimed.status == "running" and claimed.celery_task_id == "worker-1"
    assert pipeline.claim(integrity.INTEGRITY_RUNS, run.pk)[0] is None  # a duplicate delivery
    later = claimed.deadline + datetime.timedelta(seconds=1)
    assert integrity.integrity_runs_sweep(now=later) == {"requeued": 1, "failed": 0}
    # The first worker comes back late: its results must not be mixed in.
    late = IntegrityResult(run=claimed, check_name="late", kind="row_count", severity="low")
    assert pipeline.finish(integrity.INTEGRITY_RUNS, claimed, token=token, rows=[late]) is None
    run = integrity.integrity_run_execute(run_id=run.pk)
    assert run.status == "succeeded" and run.requeues == 1
    assert IntegrityResult.objects.filter(run=run).count() == 6


def test_a_failed_verification_tells_its_incident_without_a_comparison(
    shop_target, shop_checks, monkeypatch
):
    incident = IncidentFactory()
    baseline = _run(shop_target, purpose="baseline", incident_id=incident.pk)
    shop_target.password_encrypted = "not a fernet token"
    shop_target.save()
    run = _run(shop_target, purpose="verification", incident_id=incident.pk)
    assert run.status == "failed" and run.baseline_id == baseline.pk
    assert run.checks_total == 0 and run.summary.startswith("Integrity verification on")
    event = incident.timeline.filter(kind=EventKind.INTEGRITY).latest("id")
    assert event.data["integrity_run_id"] == run.pk and event.data["status"] == "failed"
    assert event.data["diff"] == [] and event.data["error"] == run.error


def test_predicates_with_percent_signs_and_reserved_names_run(shop_db, shop_target):
    shop_sql(shop_db, 'CREATE TABLE "order" ("user" integer, "created-at" date)')
    shop_sql(shop_db, 'INSERT INTO "order" VALUES (1, NULL), (999, NULL)')
    like = integrity.integrity_check_create(
        target_id=shop_target.pk,
        name="foreign emails",
        kind="business_rule",
        table_name="users",
        predicate="email NOT LIKE '%@x.test'",
    )
    reserved = integrity.integrity_check_create(
        target_id=shop_target.pk,
        name="orders of missing users",
        kind="orphans",
        table_name="order",
        columns=["user"],
        parent_table="users",
        parent_columns=["id"],
    )
    run = _run(shop_target)
    r = _results(run)
    assert (r["foreign emails"].status, r["foreign emails"].count) == ("ok", 0)
    # No primary key: the physical row address identifies the sample row.
    orphans = r["orders of missing users"]
    assert (orphans.count, orphans.sample_columns) == (1, ["ctid"])
    assert orphans.sample == [["(0,2)"]]
    assert like.pk and reserved.pk


def test_target_with_integrity_runs_is_kept_as_evidence(shop_target, shop_checks):
    from diagnostics import services as diagnostics_services

    _run(shop_target)
    with pytest.raises(diagnostics_services.TargetInUse, match="1 diagnostic run"):
        diagnostics_services.target_delete(target_id=shop_target.pk)


def test_tasks_are_registered_and_the_sweep_is_scheduled(settings):
    from config.celery import app
    from diagnostics.integrity import tasks

    app.loader.import_default_modules()
    assert "diagnostics.run_integrity" in app.tasks
    assert "diagnostics.sweep_stuck_integrity_runs" in app.tasks
    assert tasks.run_integrity.acks_late is True
    entry = settings.CELERY_BEAT_SCHEDULE["diagnostics-sweep-stuck-integrity-runs"]
    assert entry["task"] == "diagnostics.sweep_stuck_integrity_runs"
    # A missing run is nothing to do, not an error.
    assert tasks.run_integrity.apply(args=[987654]).successful()


def test_checks_on_a_view_sample_by_its_columns(shop_db, shop_target):
    shop_sql(shop_db, "CREATE VIEW live_profiles AS SELECT user_id, bio FROM profiles")
    integrity.integrity_check_create(
        target_id=shop_target.pk,
        name="view orphans",
        kind="orphans",
        table_name="live_profiles",
        columns=["user_id"],
        parent_table="users",
        parent_columns=["id"],
    )
    result = IntegrityResult.objects.get(run=_run(shop_target))
    assert (result.status, result.count) == ("violation", 3)
    assert result.sample_columns == ["user_id"] and result.sample == [[100], [101], [102]]
