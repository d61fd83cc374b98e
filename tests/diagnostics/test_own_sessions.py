"""Remediation tells Quell's own sessions by identity, not by name (issue 10, item 10): every
session Quell opens on a target is recorded (pid and backend_start) at connect; a session that
merely calls itself ``quell-...`` is remediable. On a throwaway cluster."""

import pytest

from diagnostics.models import OwnSession
from diagnostics.remediation import backends as b
from diagnostics.target import Timeouts, open_session

pytestmark = pytest.mark.django_db(transaction=True)


def _reason(spec, pid):
    # force: the cluster's sessions are the superuser's; Quell's own stay immune even forced.
    with b.open_remediation_session(spec) as session:
        found = b.preview(session, b.BackendFilter(pid=pid), kind="terminate", force=True)
    return found["backends"][0]


def test_a_session_named_like_quell_is_remediable(pg15, holders):
    impostor = holders(pg15)
    impostor.pid  # noqa: B018 (waits for the session under the holder's own name first)
    impostor.send("SET application_name = 'quell-diagnostics'; SELECT pg_sleep(60);")
    pg15.wait_for(
        "SELECT count(*) > 0 FROM pg_stat_activity WHERE pid = %s AND state = 'active' "
        "AND application_name = 'quell-diagnostics'",
        (impostor.pid,),
    )
    row = _reason(pg15.spec("quell_target"), impostor.pid)
    assert row["application"] == "quell-diagnostics"
    assert row["eligible"] is True, row["reason"]


def test_sessions_quell_opened_are_immune_and_recorded_by_identity(pg15):
    spec = pg15.spec("quell_target")
    with open_session(spec, Timeouts()) as diagnostic:
        pid = diagnostic.backend_pid
        recorded = OwnSession.objects.get(pid=pid)
        start = pg15.sql("SELECT backend_start FROM pg_stat_activity WHERE pid = %s", (pid,))
        assert recorded.backend_start == start[0][0]
        assert recorded.application_name == "quell-diagnostics"
        row = _reason(spec, pid)
    assert row["eligible"] is False
    assert row["reason"] == "a session Quell opened (quell-diagnostics)"


def test_a_reused_pid_is_not_immune(pg15, holders):
    """A recorded pid with another backend_start (a new session on a reused pid) is not Quell's."""
    holder = holders(pg15).send("SELECT pg_sleep(60);")
    holder.wait_state("state = 'active'")
    start = pg15.sql("SELECT backend_start FROM pg_stat_activity WHERE pid = %s", (holder.pid,))
    OwnSession.objects.create(
        pid=holder.pid,
        backend_start=start[0][0].replace(year=start[0][0].year - 1),
        application_name="quell-diagnostics",
        opened_at=start[0][0],
    )
    assert _reason(pg15.spec("quell_target"), holder.pid)["eligible"] is True


def test_old_records_are_pruned_once_per_period_not_on_every_connection(monkeypatch):
    import datetime

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from diagnostics import own_sessions

    long_ago = timezone.now() - own_sessions.KEEP - datetime.timedelta(hours=1)
    OwnSession.objects.create(
        pid=1, backend_start=long_ago, application_name="old", opened_at=long_ago
    )
    monkeypatch.setattr(own_sessions, "_pruned_at", None)
    with CaptureQueriesContext(connection) as first:
        own_sessions.remember(pid=2, backend_start=timezone.now(), application_name="quell-x")
    with CaptureQueriesContext(connection) as second:
        own_sessions.remember(pid=3, backend_start=timezone.now(), application_name="quell-x")

    assert not OwnSession.objects.filter(pid=1).exists()  # pruned by the first
    assert any("DELETE" in q["sql"] for q in first.captured_queries)
    assert not any("DELETE" in q["sql"] for q in second.captured_queries)
    assert set(OwnSession.objects.values_list("pid", flat=True)) >= {2, 3}

    # A period later, the next connection prunes again.
    monkeypatch.setattr(own_sessions, "_pruned_at", -own_sessions.PRUNE_EVERY_S - 1)
    with CaptureQueriesContext(connection) as later:
        own_sessions.remember(pid=4, backend_start=timezone.now(), application_name="quell-x")
    assert any("DELETE" in q["sql"] for q in later.captured_queries)
