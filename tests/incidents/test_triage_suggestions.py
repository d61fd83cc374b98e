"""Triage answers suggested from planted diagnostic results (diagnostics.triage)."""

from __future__ import annotations

import datetime

import pytest
from django.test import override_settings
from django.utils import timezone

from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget, TargetDatabase
from diagnostics.triage import suggest_answers
from incidents.triage import selectors, services
from incidents.triage.models import SuggestionOutcome

pytestmark = pytest.mark.django_db


@pytest.fixture
def target(db):
    return TargetDatabase.objects.create(name="orders-db", host="db.invalid", database="orders")


@pytest.fixture
def linked(incident, target):
    IncidentTarget.objects.create(incident=incident, target=target)
    return incident


def plant(incident, target, results, *, status="succeeded", error=""):
    """A finished run on `target` for `incident` with CheckResults {key: (status, summary)}."""
    now = timezone.now()
    run = DiagnosticRun.objects.create(
        target=target,
        incident=incident,
        status=status,
        queued_at=now,
        started_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
        error=error,
    )
    for key, spec in results.items():
        status_, summary = spec[:2]
        CheckResult.objects.create(
            run=run,
            key=key,
            title=key.replace("_", " ").capitalize(),
            family="connection" if key == "connection" else "activity",
            status=status_,
            summary=summary,
            error=spec[2] if len(spec) > 2 else "",
        )
    return run


def test_unreachable_target_suggests_cannot_connect(linked, target):
    run = plant(
        linked,
        target,
        {
            "connection": ("critical", "target unreachable", "connection refused"),
            "slow_queries": ("error", "target unreachable"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["can_connect"]["answer"] == "no"
    assert "orders-db: target unreachable" in found["can_connect"]["evidence"]
    assert found["can_connect"]["run_url"].endswith(f"/diagnostics/runs/{run.pk}/")
    assert "performance_issue" not in found


def test_slow_but_working_connection_still_connects(linked, target):
    plant(linked, target, {"connection": ("critical", "reachable: connect 4000 ms")})
    assert suggest_answers(linked.pk)["can_connect"]["answer"] == "yes"


def test_schema_change_and_blocking_locks_are_suggested(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable: connect 2 ms"),
            "recent_migrations": ("warning", "1 migration applied 10 minutes ago"),
            "blocking_locks": ("critical", "12 sessions blocked, longest wait 90 s"),
            "connections": ("ok", "40 of 97 usable connections"),
            "slow_queries": ("ok", "no slow query"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["can_connect"]["answer"] == "yes"
    assert found["recent_schema_change"]["answer"] == "yes"
    assert found["performance_issue"]["answer"] == "yes"
    assert found["performance_severity"]["answer"] == "very_slow"
    assert found["high_load"]["answer"] == "no"
    assert "check blocking queries" in found["high_load"]["evidence"]


def test_connections_near_max_suggest_high_load_and_very_slow(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "connections": ("warning", "92 of 97 usable connections (94.8 %)"),
            "long_running_queries": ("warning", "2 queries running longer than 5 min"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["high_load"]["answer"] == "yes"
    assert found["performance_severity"]["answer"] == "very_slow"
    assert "connections near max_connections" in found["performance_severity"]["evidence"]


def test_connections_near_max_by_metric_even_when_graded_ok(linked, target):
    run = plant(linked, target, {"connection": ("ok", "reachable")})
    CheckResult.objects.create(
        run=run,
        key="connections",
        title="Connections",
        family="activity",
        status="ok",
        summary="91 of 97",
        metrics={"utilisation_pct": 93.8},
    )
    found = suggest_answers(linked.pk)
    assert found["performance_severity"]["answer"] == "very_slow"
    assert found["high_load"]["answer"] == "yes"


def _blocking(run, *, status="warning", metrics=None, findings=None):
    CheckResult.objects.create(
        run=run,
        key="blocking_locks",
        title="Locks and blocking chains",
        family="locks",
        status=status,
        summary="3 sessions blocked, longest wait 12 s, chain depth 1",
        metrics=metrics or {},
        findings=findings or [],
    )


def test_blocked_writers_mean_very_slow_and_the_blocking_branch(linked, target):
    """The demo's chain: a warning by wait time, but every checkout write is blocked."""
    run = plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("skipped", "pg_stat_statements is not loaded"),
            "connections": ("ok", "12 of 97 usable connections", ""),
        },
    )
    _blocking(run, metrics={"blocked": 3, "blocked_writers": 3, "chain_depth": 1})
    found = suggest_answers(linked.pk)
    assert found["performance_issue"]["answer"] == "yes"
    assert found["performance_severity"]["answer"] == "very_slow"
    assert "3 writers blocked" in found["performance_severity"]["evidence"]
    assert found["high_load"]["answer"] == "no"
    assert "check blocking queries" in found["high_load"]["evidence"]


def test_blocked_writers_read_from_rows_of_older_runs(linked, target):
    run = plant(linked, target, {"connection": ("ok", "reachable")})
    _blocking(run, findings=[{"role": "blocked", "writer": True}, {"role": "root_blocker"}])
    found = suggest_answers(linked.pk)
    assert found["performance_severity"]["answer"] == "very_slow"


def test_deep_chain_means_very_slow(linked, target):
    run = plant(linked, target, {"connection": ("ok", "reachable")})
    _blocking(run, metrics={"blocked": 3, "blocked_writers": 0, "chain_depth": 3})
    found = suggest_answers(linked.pk)
    assert found["performance_severity"]["answer"] == "very_slow"
    assert "chain depth 3" in found["performance_severity"]["evidence"]


def test_blocking_chain_with_connections_piling_up_is_the_blocking_branch(linked, target):
    run = plant(
        linked,
        target,
        {"connection": ("ok", "reachable"), "connections": ("critical", "96 of 97 usable")},
    )
    _blocking(run, status="critical", metrics={"blocked": 80, "blocked_writers": 80})
    found = suggest_answers(linked.pk)
    assert found["high_load"]["answer"] == "no"
    assert "pile up behind it" in found["high_load"]["evidence"]


def test_warnings_only_with_every_check_answered_is_usable(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("warning", "3 queries slower than 100 ms"),
            "long_running_queries": ("ok", "none"),
            "blocking_locks": ("ok", "no session is blocked by another"),
            "connections": ("ok", "12 of 97 usable connections"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["performance_severity"]["answer"] == "usable"


def test_a_skipped_check_is_never_evidence_of_usable(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("skipped", "pg_stat_statements is not loaded"),
            "long_running_queries": ("warning", "1 query running longer than 5 min"),
            "blocking_locks": ("ok", "no session is blocked by another"),
            "connections": ("ok", "12 of 97 usable connections"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["performance_issue"]["answer"] == "yes"
    assert "performance_severity" not in found  # the responder grades it


def test_healthy_but_partly_skipped_says_what_was_not_checked(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("skipped", "pg_stat_statements is not loaded"),
            "blocking_locks": ("ok", "no session is blocked by another"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["performance_issue"]["answer"] == "no"
    assert "not checked" in found["performance_issue"]["evidence"]
    assert "pg_stat_statements is not loaded" in found["performance_issue"]["evidence"]


def test_a_suggestion_says_when_it_contradicts_the_declared_severity(linked, target, responder):
    linked.severity = "SEV1"
    linked.save(update_fields=["severity"])
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("warning", "3 queries slower than 100 ms"),
            "long_running_queries": ("ok", "none"),
            "blocking_locks": ("ok", "none"),
            "connections": ("ok", "12 of 97"),
        },
    )
    services.triage_walk_start(incident_id=linked.pk, actor=responder)
    suggestions = selectors.suggestions_for(incident_id=linked.pk)
    for question, answer in (("can_connect", "yes"), ("performance_issue", "yes")):
        services.triage_walk_answer(
            incident_id=linked.pk, question=question, answer=answer, actor=responder
        )
    state = selectors.walk_state(
        selectors.walk_current(incident_id=linked.pk), suggestions=suggestions
    )
    assert state["question"]["key"] == "performance_severity"
    assert state["suggestion"]["answer"] == "usable"
    assert state["suggestion"]["leads_to_severity"] == "SEV3"
    assert "declared SEV1" in state["suggestion"]["severity_note"]
    assert "SEV3" in state["suggestion"]["severity_note"]


def test_a_suggestion_matching_the_declared_severity_has_no_note(linked, target, responder):
    linked.severity = "SEV1"
    linked.save(update_fields=["severity"])
    plant(linked, target, {"connection": ("critical", "unreachable", "connection refused")})
    services.triage_walk_start(incident_id=linked.pk, actor=responder)
    state = selectors.walk_state(
        selectors.walk_current(incident_id=linked.pk),
        suggestions=selectors.suggestions_for(incident_id=linked.pk),
    )
    assert state["suggestion"]["leads_to_severity"] == "SEV1"
    assert state["suggestion"]["severity_note"] == ""


def test_statement_timeouts_mean_very_slow(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("warning", "3 queries slower than 100 ms"),
            "table_sizes": ("error", "timed out after 5000 ms (statement_timeout)"),
        },
    )
    assert suggest_answers(linked.pk)["performance_severity"]["answer"] == "very_slow"


def test_healthy_run_answers_no_performance_issue(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "slow_queries": ("ok", "none"),
            "blocking_locks": ("ok", "no session is blocked by another"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["performance_issue"]["answer"] == "no"
    assert "recent_schema_change" not in found  # not run: not suggested


def test_no_runs_no_suggestions(linked):
    assert suggest_answers(linked.pk) == {}


def test_walk_shows_and_records_the_suggestion_accepted_or_overridden(linked, target, responder):
    plant(
        linked,
        target,
        {"connection": ("critical", "target unreachable", "timeout expired")},
    )
    services.triage_walk_start(incident_id=linked.pk, actor=responder)
    suggestions = selectors.suggestions_for(incident_id=linked.pk)
    state = selectors.walk_state(
        selectors.walk_current(incident_id=linked.pk), suggestions=suggestions
    )
    assert state["suggestion"]["answer"] == "no"
    assert "orders-db: target unreachable" in state["suggestion"]["evidence"]
    walk = services.triage_walk_answer(
        incident_id=linked.pk,
        question="can_connect",
        answer="yes",
        actor=responder,
        suggestion=suggestions["can_connect"],
    )
    step = walk.steps.get()
    assert step.suggestion == SuggestionOutcome.OVERRIDDEN
    assert step.suggested_answer_key == "no"
    assert "target unreachable" in step.suggestion_evidence
    services.triage_walk_back(incident_id=linked.pk, actor=responder)
    walk = services.triage_walk_answer(
        incident_id=linked.pk,
        question="can_connect",
        answer="no",
        actor=responder,
        suggestion=suggestions["can_connect"],
    )
    assert walk.steps.get(withdrawn_at__isnull=True).suggestion == SuggestionOutcome.ACCEPTED


def _broken_provider(incident_id):
    raise RuntimeError("provider down")


def _label_provider(incident_id):
    return {"can_connect": {"answer": "No", "evidence": "from a label", "run_url": ""}}


@override_settings(
    QUELL_TRIAGE_ANSWER_PROVIDERS=[
        "tests.incidents.test_triage_suggestions._broken_provider",
        "tests.incidents.test_triage_suggestions._label_provider",
    ]
)
def test_a_failing_provider_is_skipped_and_labels_match_answers(incident, responder):
    services.triage_walk_start(incident_id=incident.pk, actor=responder)
    suggestions = selectors.suggestions_for(incident_id=incident.pk)
    state = selectors.walk_state(
        selectors.walk_current(incident_id=incident.pk), suggestions=suggestions
    )
    assert state["suggestion"]["answer"] == "no"
    assert state["suggestion"]["evidence"] == "from a label"


def test_integrity_violations_suggest_a_data_integrity_issue_and_its_scope(linked, target):
    integrity = pytest.importorskip("diagnostics.integrity.models")
    now = timezone.now()
    run = integrity.IntegrityRun.objects.create(
        target=target,
        incident=linked,
        purpose="baseline",
        status="succeeded",
        queued_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    integrity.IntegrityResult.objects.create(
        run=run,
        check_name="Orphaned profiles",
        kind="orphans",
        severity="medium",
        status="violation",
        count=3,
    )
    integrity.IntegrityResult.objects.create(
        run=run, check_name="Admin users", kind="critical_count", severity="high", status="ok"
    )
    found = suggest_answers(linked.pk)
    assert found["data_integrity_issue"]["answer"] == "yes"
    assert "Orphaned profiles violation (3 rows)" in found["data_integrity_issue"]["evidence"]
    assert found["integrity_scope"]["answer"] == "isolated"
    assert found["data_integrity_issue"]["run_url"].endswith("#panel-integrity")


def test_checksum_failures_suggest_widespread_corruption(linked, target):
    plant(
        linked,
        target,
        {
            "connection": ("ok", "reachable"),
            "database_errors": ("critical", "2 checksum failures (last ...): data corruption"),
        },
    )
    found = suggest_answers(linked.pk)
    assert found["data_integrity_issue"]["answer"] == "yes"
    assert found["integrity_scope"]["answer"] == "widespread"
