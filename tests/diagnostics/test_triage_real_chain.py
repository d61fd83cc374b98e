"""Triage suggestions from a real blocking chain on a throwaway cluster (issue 13, item 2).

The demo's situation: a session idle in transaction holds a row lock on "User", checkout writes
queue behind it. By wait time alone the chain is young (a warning at most), but it blocks
writers: triage must suggest "very slow" (SEV2) and the blocking branch, never "usable".
"""

import datetime

import pytest
from django.utils import timezone

from diagnostics.checks import registry
from diagnostics.models import CheckResult, DiagnosticRun, IncidentTarget, TargetDatabase
from diagnostics.runner import run_checks
from diagnostics.target import Timeouts
from diagnostics.triage import suggest_answers
from incidents import services

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

CHECKS = ["connection", "blocking_locks", "long_running_queries", "connections", "slow_queries"]


def test_a_chain_blocking_writers_suggests_very_slow_and_the_blocking_branch(
    fresh_db, holders, responder
):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        'CREATE TABLE "User" (id serial PRIMARY KEY, email text);'
        "INSERT INTO \"User\" (email) SELECT 'u' || g FROM generate_series(1, 50) g;",
        dbname=dbname,
    )
    idle = holders(cluster, dbname).send('BEGIN; SELECT * FROM "User" WHERE id = 1 FOR UPDATE;')
    idle.wait_state("state = 'idle in transaction'")
    for n in range(2):
        writer = holders(cluster, dbname).send(f"UPDATE \"User\" SET email = 'w{n}' WHERE id = 1;")
        writer.wait_state("wait_event_type = 'Lock'")

    classes = [registry.get(k) for k in CHECKS]
    executions = run_checks(spec, classes, timeouts=Timeouts(connect_s=2, statement_ms=3000))
    incident = services.incident_declare(
        title="Checkout hangs", severity="SEV2", kind="performance", actor=responder
    )
    target = TargetDatabase.objects.create(name="shop", host="127.0.0.1", database=dbname)
    IncidentTarget.objects.create(incident=incident, target=target)
    now = timezone.now()
    run = DiagnosticRun.objects.create(
        target=target,
        incident=incident,
        status="succeeded",
        queued_at=now,
        started_at=now,
        finished_at=now,
        deadline=now + datetime.timedelta(minutes=5),
    )
    for e in executions:
        CheckResult.objects.create(
            run=run,
            key=e.key,
            title=registry.get(e.key).title,
            family=str(registry.get(e.key).family),
            status=str(e.outcome.status),
            summary=e.outcome.summary,
            findings=e.outcome.findings,
            metrics=e.outcome.metrics,
        )
    locks = run.results.get(key="blocking_locks")
    assert locks.metrics["blocked_writers"] == 2

    found = suggest_answers(incident.pk)
    assert found["can_connect"]["answer"] == "yes"
    assert found["performance_issue"]["answer"] == "yes"
    assert found["performance_severity"]["answer"] == "very_slow"
    assert found["high_load"]["answer"] == "no"
    assert "check blocking queries" in found["high_load"]["evidence"]
