"""Celery wiring: task names, worker settings, the periodic sweep, ids in and early returns."""

import datetime

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app
from diagnostics import services, tasks
from diagnostics.models import DiagnosticRun
from tests.diagnostics.d2_fixtures import TEST_SUITE

pytestmark = pytest.mark.django_db


def test_tasks_are_registered_with_late_acks_and_time_limits():
    app.loader.import_default_modules()
    assert "diagnostics.run_diagnostics" in app.tasks
    assert "diagnostics.sweep_stuck_runs" in app.tasks
    assert tasks.run_diagnostics.acks_late is True
    # Only Quell's own database hiccups are retried; target problems are results, not errors.
    from django.db import OperationalError

    assert OperationalError in tasks.run_diagnostics.autoretry_for
    assert tasks.run_diagnostics.max_retries == 5
    assert settings.CELERY_TASK_ACKS_LATE and settings.CELERY_TASK_REJECT_ON_WORKER_LOST
    assert settings.CELERY_TASK_TIME_LIMIT > settings.CELERY_TASK_SOFT_TIME_LIMIT > 0
    # A run's deadline outlives the hard time limit, so the sweep never fails a live run.
    assert settings.QUELL_DIAGNOSTICS_RUN_DEADLINE_S > settings.CELERY_TASK_TIME_LIMIT


def test_sweep_is_scheduled_with_celery_beat():
    entry = settings.CELERY_BEAT_SCHEDULE["diagnostics-sweep-stuck-runs"]
    assert entry["task"] == "diagnostics.sweep_stuck_runs"
    assert 0 < entry["schedule"] <= 300


def test_run_task_for_a_missing_run_returns_quietly():
    assert tasks.run_diagnostics.apply(args=[987654]).successful()


def test_sweep_task_fails_runs_already_requeued_once(live_target, test_checks, sent_runs):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    past = timezone.now() - datetime.timedelta(hours=1)
    DiagnosticRun.objects.filter(pk=run.pk).update(deadline=past, requeues=1)
    result = tasks.sweep_stuck_runs.apply()
    assert result.get() == {"requeued": 0, "failed": 1}
    run.refresh_from_db()
    assert run.status == "failed" and run.finished_at is not None


def test_sweep_leaves_runs_within_their_deadline_alone(live_target, test_checks, sent_runs):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    assert tasks.sweep_stuck_runs.apply().get() == {"requeued": 0, "failed": 0}
    run.refresh_from_db()
    assert run.status == "queued" and run.requeues == 0


def test_requeue_sends_the_task_again_after_commit(
    live_target, test_checks, sent_runs, django_capture_on_commit_callbacks
):
    run = services.diagnostic_run_start(target_id=live_target.pk, suite=TEST_SUITE)
    old_task_id = run.celery_task_id
    with django_capture_on_commit_callbacks(execute=True):
        services.diagnostic_runs_sweep(now=run.deadline + datetime.timedelta(seconds=1))
    run.refresh_from_db()
    assert sent_runs == [[run.pk]]
    assert run.celery_task_id != old_task_id  # a fresh id: the old message is a duplicate
