"""Guarded remediation against real PostgreSQL (the machine's server, a scratch database).

Backends are planted with psql holders (own process group, killed at teardown): a long
pg_sleep, an idle-in-transaction session, a query that ignores cancels. The fixtures are in
tests/diagnostics/conftest.py, the local server and the planted queries in remediation_support.
"""

from __future__ import annotations

import datetime
import time

import pytest
from django.core.exceptions import PermissionDenied

from diagnostics.models import TargetDatabase
from diagnostics.remediation import backends as b
from diagnostics.remediation import services as rs
from diagnostics.remediation.models import RemediationAction
from diagnostics.services import DiagnosticsError
from incidents.models import EventKind, TimelineEvent
from tests.diagnostics.remediation_support import (
    APP_ROLE,
    HOST,
    IDLE_IN_TX,
    PORT,
    REPL_ROLE,
    SLEEP,
    STUBBORN,
    WEAK_ROLE,
)

pytestmark = pytest.mark.usefixtures("quick_confirmation")


def _row(action: RemediationAction, pid: int) -> dict:
    return next(r for r in action.preview if r["pid"] == pid)


def _pairs(action: RemediationAction, *pids: int) -> list[dict]:
    return [{"pid": p, "backend_start": _row(action, p)["backend_start"]} for p in pids]


def test_preview_lists_exactly_the_backends_a_filter_hits(plant, target, incident, commander_user):
    sleeper = plant(SLEEP, wait="state = 'active' AND strpos(query, 'pg_sleep') > 0")
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"states": ["active"], "user": APP_ROLE},
        actor=commander_user,
    )
    pids = [r["pid"] for r in action.preview]
    assert pids == [sleeper.pid]  # the idle-in-transaction session is not active
    row = action.preview[0]
    assert row["eligible"] and row["reason"] == ""
    assert row["user"] == APP_ROLE
    assert row["application"] == sleeper.app
    assert row["client"] == "127.0.0.1"
    assert row["state"] == "active"
    assert row["query"].startswith("SELECT pg_sleep(60)")
    assert row["duration_s"] >= 0
    assert datetime.datetime.fromisoformat(row["backend_start"]).tzinfo is not None
    assert action.status == "previewed" and action.database == target.database
    assert action.filters == {"states": ["active"], "user": APP_ROLE}
    assert idle.pid not in pids


def test_preview_longer_than_filter_leaves_out_short_queries(plant, target, incident, admin):
    plant(SLEEP, wait="state = 'active' AND strpos(query, 'pg_sleep') > 0")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"states": ["active"], "min_duration_s": 300},  # the playbook's 5 minutes
        actor=admin,
    )
    assert [r for r in action.preview if r["user"] == APP_ROLE] == []


def test_cancel_ends_the_query_but_keeps_the_session(
    server, scratch, plant, target, incident, commander_user
):
    sleeper = plant(SLEEP, wait="state = 'active' AND strpos(query, 'pg_sleep') > 0")
    before = server.backend(sleeper.pid, scratch)
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"pid": sleeper.pid},
        actor=commander_user,
    )
    done = rs.remediation_execute(
        action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
    )
    assert done.status == "done"
    assert [(r["pid"], r["outcome"]) for r in done.results] == [(sleeper.pid, "cancelled")]
    after = server.backend(sleeper.pid, scratch)
    assert after is not None and after[1] == before[1]  # same session
    assert after[2] == "idle"
    event = TimelineEvent.objects.get(incident=incident, kind=EventKind.REMEDIATION)
    assert event.actor == commander_user
    assert f"{sleeper.pid} cancelled" in event.message
    assert event.data["results"][0]["outcome"] == "cancelled"
    assert event.data["remediation_id"] == action.pk
    assert done.executed_by == commander_user and done.finished_at is not None


def test_terminate_ends_the_session_of_an_idle_transaction(
    server, scratch, plant, target, incident, commander_user
):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    refused = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"idle_in_transaction": True},
        actor=commander_user,
    )
    row = _row(refused, idle.pid)
    assert not row["eligible"] and "terminate" in row["reason"]

    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="terminate",
        filters={"idle_in_transaction": True},
        actor=commander_user,
    )
    assert _row(action, idle.pid)["eligible"]
    done = rs.remediation_execute(
        action_id=action.pk, confirmed=_pairs(action, idle.pid), actor=commander_user
    )
    assert [(r["pid"], r["outcome"]) for r in done.results] == [(idle.pid, "terminated")]
    assert server.backend(idle.pid, scratch) is None


def test_identity_recheck_skips_a_pid_whose_backend_start_changed(
    server, scratch, plant, target, incident, commander_user
):
    sleeper = plant(SLEEP, wait="state = 'active' AND strpos(query, 'pg_sleep') > 0")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="terminate",
        filters={"pid": sleeper.pid},
        actor=commander_user,
    )
    # What the responder saw belongs to an earlier session under the same pid (pid reuse).
    real = _row(action, sleeper.pid)["backend_start"]
    earlier = (datetime.datetime.fromisoformat(real) - datetime.timedelta(minutes=3)).isoformat()
    action.preview[0]["backend_start"] = earlier
    action.save(update_fields=["preview"])
    done = rs.remediation_execute(
        action_id=action.pk,
        confirmed=[{"pid": sleeper.pid, "backend_start": earlier}],
        actor=commander_user,
    )
    assert done.results[0]["outcome"] == "skipped"
    assert "changed since the preview" in done.results[0]["detail"]
    assert server.backend(sleeper.pid, scratch) is not None  # left alone


def test_a_backend_that_no_longer_matches_is_skipped(
    server, scratch, plant, target, incident, commander_user
):
    sleeper = plant("SELECT pg_sleep(1.5);", wait="state = 'active'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="terminate",
        filters={"states": ["active"], "user": APP_ROLE},
        actor=commander_user,
    )
    sleeper.wait_state("state = 'idle'")
    done = rs.remediation_execute(
        action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
    )
    assert done.results[0]["outcome"] == "skipped"
    assert "no longer matches" in done.results[0]["detail"]
    assert server.backend(sleeper.pid, scratch) is not None


def test_guardrails_refuse_own_quell_and_non_client_backends(server, scratch, plant, target):
    plant(SLEEP, user="postgres", dbname="postgres", wait="state = 'active'")
    other_db = server.wait_for(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'postgres' AND query LIKE %s",
        ("SELECT pg_sleep(60)%",),
    )
    spec = target.to_connection_spec()
    with b.open_remediation_session(spec) as session:
        facts_pid = session.backend_pid

        def reason(pid, kind="terminate", force=False):
            found = b.preview(session, b.BackendFilter(pid=pid), kind=kind, force=force)
            return found["backends"][0]["reason"]

        assert reason(facts_pid) == "Quell's own remediation session"
        checkpointer = server.sql(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'"
        )[0][0]
        assert reason(checkpointer).startswith("not a client backend (checkpointer)")
        launcher = server.sql(
            "SELECT pid FROM pg_stat_activity WHERE backend_type = 'autovacuum launcher'"
        )
        if launcher:
            assert reason(launcher[0][0]).startswith("not a client backend")
        assert reason(other_db).startswith("in another database (postgres)")


def test_a_session_merely_tagged_quell_is_not_immune(plant, target):
    """Only sessions Quell opened are immune (tests/diagnostics/test_own_sessions.py)."""
    tagged = plant("SET application_name = 'quell-diagnostics'; " + SLEEP)
    tagged.cluster.wait_for(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
        "AND application_name = 'quell-diagnostics'",
        (tagged.pid,),
        dbname=tagged.dbname,
    )
    with b.open_remediation_session(target.to_connection_spec()) as session:
        found = b.preview(session, b.BackendFilter(pid=tagged.pid), kind="terminate", force=True)
    assert found["backends"][0]["reason"] == ""


def test_superuser_and_replication_sessions_need_an_admins_force(
    plant, target, incident, commander_user, admin
):
    su = plant(SLEEP, user="postgres", wait="state = 'active'")
    repl = plant(SLEEP, user=REPL_ROLE, wait="state = 'active'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"states": ["active"], "query_contains": "pg_sleep(60)"},
        actor=commander_user,
    )
    assert "superuser" in _row(action, su.pid)["reason"]
    assert "replication" in _row(action, repl.pid)["reason"]
    with pytest.raises(DiagnosticsError) as refused:
        rs.remediation_execute(
            action_id=action.pk, confirmed=_pairs(action, su.pid), actor=commander_user
        )
    assert refused.value.field == "confirmed"
    with pytest.raises(PermissionDenied):
        rs.remediation_preview(
            target_id=target.pk,
            incident_id=incident.pk,
            kind="cancel",
            filters={"pid": su.pid},
            force=True,
            actor=commander_user,
        )
    forced = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"pid": su.pid},
        force=True,
        actor=admin,
    )
    assert _row(forced, su.pid)["eligible"]
    done = rs.remediation_execute(
        action_id=forced.pk, confirmed=_pairs(forced, su.pid), actor=admin
    )
    assert done.results[0]["outcome"] == "cancelled"


def test_a_target_role_without_pg_signal_backend_is_told_the_grant(server, plant, scratch, target):
    sleeper = plant(SLEEP, wait="state = 'active'")
    weak = TargetDatabase.objects.create(
        name="weak",
        host=HOST,
        port=PORT,
        database=scratch,
        user=WEAK_ROLE,
        sslmode="disable",
        remediation_allowed=True,
    )

    def reason():
        with b.open_remediation_session(weak.to_connection_spec()) as session:
            found = b.preview(session, b.BackendFilter(pid=sleeper.pid), kind="cancel", force=False)
        return found["backends"][0]["reason"]

    # Another role's session is opaque without pg_read_all_stats: refused, with the grant.
    assert reason().startswith(f"hidden from Quell's role {WEAK_ROLE}")
    server.sql(f"GRANT pg_read_all_stats TO {WEAK_ROLE}")
    try:
        assert reason().endswith(f"GRANT pg_signal_backend TO {WEAK_ROLE};")
    finally:
        server.sql(f"REVOKE pg_read_all_stats FROM {WEAK_ROLE}")


def test_targets_with_remediation_off_are_refused(target, incident, commander_user):
    target.remediation_allowed = False
    target.save()
    with pytest.raises(DiagnosticsError) as refused:
        rs.remediation_preview(
            target_id=target.pk,
            incident_id=incident.pk,
            kind="cancel",
            filters={"states": ["active"]},
            actor=commander_user,
        )
    assert refused.value.field == "target"
    assert "remediation_allowed" in str(refused.value)


def test_a_preview_executes_once(plant, target, incident, commander_user):
    sleeper = plant(SLEEP, wait="state = 'active'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"pid": sleeper.pid},
        actor=commander_user,
    )
    rs.remediation_execute(
        action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
    )
    with pytest.raises(DiagnosticsError) as again:
        rs.remediation_execute(
            action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
        )
    assert again.value.field == "action"


def test_an_expired_preview_is_refused(settings, plant, target, incident, commander_user):
    sleeper = plant(SLEEP, wait="state = 'active'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"pid": sleeper.pid},
        actor=commander_user,
    )
    settings.QUELL_REMEDIATION_PREVIEW_TTL_S = 0
    time.sleep(0.05)
    with pytest.raises(DiagnosticsError, match="preview again"):
        rs.remediation_execute(
            action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
        )


def test_terminate_is_confirmed_by_rereading_activity_before_14(server, scratch, plant, target):
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    with b.open_remediation_session(target.to_connection_spec()) as session:
        found = b.preview(session, b.BackendFilter(pid=idle.pid), kind="terminate", force=False)
        results = b.signal(
            session,
            [found["backends"][0]],
            kind="terminate",
            flt=b.BackendFilter(pid=idle.pid),
            force=False,
            confirm_timeout_s=3,
            legacy_confirm=True,  # the pre-14 path: pg_terminate_backend(pid), then re-read
        )
    assert results[0]["outcome"] == "terminated"
    assert server.backend(idle.pid, scratch) is None


def test_cancel_then_terminate_escalates_what_ignores_the_cancel(
    server, scratch, plant, target, incident, commander_user, django_capture_on_commit_callbacks
):
    stubborn = plant(STUBBORN, wait="state = 'active' AND strpos(query, 'DO ') = 1")
    idle = plant(IDLE_IN_TX, wait="state = 'idle in transaction'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel_then_terminate",
        filters={"user": APP_ROLE},
        grace_s=1,
        actor=commander_user,
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        done = rs.remediation_execute(
            action_id=action.pk,
            confirmed=_pairs(action, stubborn.pid, idle.pid),
            actor=commander_user,
        )
    outcomes = {r["pid"]: (r["action"], r["outcome"]) for r in done.results}
    assert outcomes[stubborn.pid] == ("cancel", "signalled")  # still running: it swallows cancels
    assert outcomes[idle.pid] == ("terminate", "terminated")  # no query to cancel
    assert done.status == "escalation_pending" and done.escalate_at is not None
    assert len(callbacks) == 1  # the escalation task is sent after commit

    escalated = rs.remediation_escalate(action_id=action.pk)
    assert escalated.status == "done"
    assert [(r["pid"], r["outcome"]) for r in escalated.escalation_results] == [
        (stubborn.pid, "terminated")
    ]
    assert server.backend(stubborn.pid, scratch) is None
    assert rs.remediation_escalate(action_id=action.pk) is None  # a second delivery: nothing
    phases = [
        e.data["phase"]
        for e in TimelineEvent.objects.filter(
            incident=incident, kind=EventKind.REMEDIATION
        ).order_by("id")
    ]
    assert phases == ["execution", "escalation"]


def test_escalation_leaves_alone_a_session_that_let_go(
    server, scratch, plant, target, incident, commander_user, django_capture_on_commit_callbacks
):
    sleeper = plant(SLEEP, wait="state = 'active' AND strpos(query, 'pg_sleep') > 0")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel_then_terminate",
        filters={"pid": sleeper.pid},
        grace_s=1,
        actor=commander_user,
    )
    with django_capture_on_commit_callbacks(execute=False):
        rs.remediation_execute(
            action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
        )
    escalated = rs.remediation_escalate(action_id=action.pk)
    assert escalated.escalation_results[0]["outcome"] == "skipped"
    assert "let go" in escalated.escalation_results[0]["detail"]
    assert server.backend(sleeper.pid, scratch) is not None


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({}, "filters"),
        ({"states": ["sleeping"]}, "states"),
        ({"pid": "abc"}, "pid"),
        ({"pid": 5, "user": "x"}, "pid"),
        ({"min_duration_s": "soon"}, "min_duration_s"),
        ({"min_duration_s": -1}, "min_duration_s"),
    ],
)
def test_bad_filters_are_refused_with_the_field(target, incident, commander_user, filters, field):
    with pytest.raises(DiagnosticsError) as refused:
        rs.remediation_preview(
            target_id=target.pk,
            incident_id=incident.pk,
            kind="cancel",
            filters=filters,
            actor=commander_user,
        )
    assert refused.value.field == field
    assert not RemediationAction.objects.exists()


def test_parallel_workers_are_refused_and_point_at_their_leader(server, scratch, plant, target):
    server.sql(
        "CREATE TABLE IF NOT EXISTS par AS SELECT generate_series(1, 5000) AS i", dbname=scratch
    )
    server.sql("GRANT SELECT ON par TO PUBLIC", dbname=scratch)
    leader = plant(
        "SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; "
        "SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2; "
        "SELECT count(*) FROM par WHERE pg_sleep(0.005) IS NOT NULL;"
    )
    server.wait_for(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE leader_pid = %s",
        (leader.pid,),
        dbname=scratch,
    )
    with b.open_remediation_session(target.to_connection_spec()) as session:
        found = b.preview(
            session,
            b.BackendFilter(user=APP_ROLE, query_contains="FROM par"),
            kind="cancel",
            force=False,
        )
    rows = {r["pid"]: r for r in found["backends"]}
    workers = [r for r in rows.values() if r["backend_type"] == "parallel worker"]
    assert workers
    assert all(
        r["reason"] == f"a parallel worker: signal its leader (pid {leader.pid})" for r in workers
    )
    assert rows[leader.pid]["eligible"]


def test_another_databases_query_text_is_not_shown(server, plant, target):
    plant(
        "SELECT pg_sleep(60) /* secret */;",
        user="postgres",
        dbname="postgres",
        wait="state = 'active'",
    )
    other = server.wait_for(
        "SELECT pid FROM pg_stat_activity WHERE datname = 'postgres' AND query LIKE %s",
        ("%/* secret */%",),
    )
    with b.open_remediation_session(target.to_connection_spec()) as session:
        row = b.preview(session, b.BackendFilter(pid=other), kind="cancel", force=True)["backends"][
            0
        ]
    assert not row["eligible"] and row["query"] == ""


def test_escalations_whose_task_never_came_are_swept(
    plant, target, incident, commander_user, django_capture_on_commit_callbacks
):
    stubborn = plant(STUBBORN, wait="state = 'active' AND strpos(query, 'DO ') = 1")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel_then_terminate",
        filters={"pid": stubborn.pid},
        grace_s=1,
        actor=commander_user,
    )
    with django_capture_on_commit_callbacks(execute=False):  # the task is "lost"
        rs.remediation_execute(
            action_id=action.pk, confirmed=_pairs(action, stubborn.pid), actor=commander_user
        )
    assert rs.remediation_escalations_due() == 0  # not due yet
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=2)
    assert rs.remediation_escalations_due(now=later) == 1
    action.refresh_from_db()
    assert action.status == "done"
    assert action.escalation_results[0]["outcome"] == "terminated"


def test_cancel_skips_a_session_that_moved_on_to_another_query(
    server, scratch, plant, target, incident, commander_user
):
    sleeper = plant("SELECT pg_sleep(1);", wait="state = 'active'")
    action = rs.remediation_preview(
        target_id=target.pk,
        incident_id=incident.pk,
        kind="cancel",
        filters={"pid": sleeper.pid},
        actor=commander_user,
    )
    sleeper.send("SELECT pg_sleep(60);")  # the next query, not the one previewed
    sleeper.wait_state("state = 'active' AND strpos(query, 'pg_sleep(60)') > 0")
    done = rs.remediation_execute(
        action_id=action.pk, confirmed=_pairs(action, sleeper.pid), actor=commander_user
    )
    assert done.results[0]["outcome"] == "skipped"
    assert "different query" in done.results[0]["detail"]
    assert server.backend(sleeper.pid, scratch)[2] == "active"
