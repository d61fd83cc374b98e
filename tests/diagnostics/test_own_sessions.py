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
