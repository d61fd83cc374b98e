"""Connections, long-running queries and idle-in-transaction sessions, with planted sessions."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import LIMITED_ROLE, run_check

pytestmark = pytest.mark.slow


def _by(findings, dimension):
    return {f["value"]: f["connections"] for f in findings if f["dimension"] == dimension}


def test_connections_counts_by_state_user_and_application(pg_cluster, target_spec, holders):
    idle = [holders(pg_cluster).send("SELECT 1;") for _ in range(2)]
    busy = holders(pg_cluster).send("SELECT pg_sleep(30);")
    for h in idle:
        h.wait_state("state = 'idle'")
    busy.wait_state("state = 'active'")

    outcome = run_check(target_spec, "connections").outcome

    total = outcome.findings[0]
    assert total["dimension"] == "total"
    assert total["connections"] >= 3
    assert total["max_connections"] == 60
    assert total["usable"] == 60 - total["reserved"]  # superuser_reserved_connections counted
    apps = _by(outcome.findings, "application")
    assert apps[idle[0].app] == 1 and apps[busy.app] == 1
    assert "quell-diagnostics" not in apps  # Quell's own backend is never a finding
    states = _by(outcome.findings, "state")
    assert states["idle"] >= 2 and states["active"] >= 1
    assert _by(outcome.findings, "user")["postgres"] >= 3
    assert outcome.status == CheckStatus.OK


def test_connections_warns_and_goes_critical_by_utilisation(pg_cluster, target_spec, holders):
    for _ in range(3):
        holders(pg_cluster).send("SELECT 1;").pid  # noqa: B018 (waits for the session)
    assert (
        run_check(target_spec, "connections", warning_pct=1, critical_pct=99).outcome.status
        == CheckStatus.WARNING
    )
    assert (
        run_check(target_spec, "connections", warning_pct=1, critical_pct=2).outcome.status
        == CheckStatus.CRITICAL
    )


def test_long_running_query_is_flagged_past_the_threshold(pg_cluster, target_spec, holders):
    sleeper = holders(pg_cluster).send("SELECT pg_sleep(60);")
    sleeper.wait_state("state = 'active' AND query_start < clock_timestamp() - interval '0.5 s'")

    flagged = run_check(target_spec, "long_running_queries", threshold_s=0.3).outcome
    assert flagged.status == CheckStatus.WARNING
    [row] = [f for f in flagged.findings if f.get("pid") == sleeper.pid]
    assert "pg_sleep(60)" in row["query"]
    assert row["duration_s"] >= 0.3
    assert all(f.get("application_name") != "quell-diagnostics" for f in flagged.findings)

    critical = run_check(target_spec, "long_running_queries", threshold_s=0.3, critical_s=0.4)
    assert critical.outcome.status == CheckStatus.CRITICAL

    # The playbook's default, 5 minutes: a 1-second query is not "long-running".
    default = run_check(target_spec, "long_running_queries").outcome
    assert default.status == CheckStatus.OK
    assert "5.0 min" in default.summary


def test_longest_active_queries_are_listed_below_the_threshold_marked_as_such(
    pg_cluster, target_spec, holders
):
    older = holders(pg_cluster).send("SELECT pg_sleep(60);")
    older.wait_state("state = 'active' AND query_start < clock_timestamp() - interval '1.5 s'")
    newer = holders(pg_cluster).send("SELECT pg_sleep(59);")
    newer.wait_state("state = 'active'")

    quiet = run_check(target_spec, "long_running_queries").outcome
    assert quiet.status == CheckStatus.OK  # nothing near 5 minutes
    listed = {f["pid"]: f for f in quiet.findings if "pid" in f}
    assert {older.pid, newer.pid} <= set(listed)
    assert not any(f["over_threshold"] for f in listed.values())
    assert "below the threshold" in quiet.summary and f"pid {older.pid}" in quiet.summary
    assert quiet.metrics["long_running"] == 0 and quiet.metrics["longest_active_s"] >= 1.5

    split = run_check(target_spec, "long_running_queries", threshold_s=1.0).outcome
    assert split.status == CheckStatus.WARNING
    by_pid = {f["pid"]: f for f in split.findings if "pid" in f}
    assert by_pid[older.pid]["over_threshold"] is True
    assert by_pid[newer.pid]["over_threshold"] is False  # listed, marked below the threshold
    assert split.metrics["long_running"] == 1
    assert split.findings[0]["pid"] == older.pid  # longest first

    capped = run_check(target_spec, "long_running_queries", top=1).outcome
    assert [f["pid"] for f in capped.findings if "pid" in f] == [older.pid]


def test_idle_in_transaction_is_counted_and_flagged(pg_cluster, target_spec, holders):
    idle = holders(pg_cluster).send("BEGIN; SELECT txid_current();")
    idle.wait_state(
        "state = 'idle in transaction' AND state_change < clock_timestamp() - interval '0.4 s'"
    )

    outcome = run_check(target_spec, "idle_in_transaction", threshold_s=0.3).outcome

    assert outcome.status == CheckStatus.WARNING
    assert outcome.metrics["idle_in_transaction"] >= 1
    assert outcome.metrics["oldest_idle_s"] >= 0.3
    [row] = [f for f in outcome.findings if f["pid"] == idle.pid]
    assert row["over_threshold"] is True
    assert row["state"] == "idle in transaction"

    relaxed = run_check(target_spec, "idle_in_transaction", threshold_s=3600).outcome
    assert relaxed.status == CheckStatus.OK
    assert "1 session idle in transaction" in relaxed.summary


def test_no_idle_transaction_is_ok(target_spec):
    outcome = run_check(target_spec, "idle_in_transaction").outcome
    assert outcome.status == CheckStatus.OK
    assert outcome.summary == "no session idle in transaction"


def test_role_without_pg_monitor_reports_a_coverage_gap_not_health(pg_cluster, holders):
    # A superuser's long query is invisible in detail to a role without pg_monitor.
    sleeper = holders(pg_cluster).send("SELECT pg_sleep(60);")
    sleeper.wait_state("state = 'active' AND query_start < clock_timestamp() - interval '0.5 s'")
    limited = pg_cluster.spec("quell_target", user=LIMITED_ROLE)

    for key, thresholds in [
        ("long_running_queries", {"threshold_s": 0.3}),
        ("idle_in_transaction", {}),
        ("connections", {}),
    ]:
        outcome = run_check(limited, key, **thresholds).outcome
        assert outcome.status == CheckStatus.WARNING, (key, outcome.summary)
        assert "coverage gap" in outcome.summary
        assert outcome.fix == f"GRANT pg_monitor TO {LIMITED_ROLE};"

    # With pg_monitor the same role sees the query: the gap closes.
    pg_cluster.sql(f"GRANT pg_monitor TO {LIMITED_ROLE}")
    try:
        outcome = run_check(limited, "long_running_queries", threshold_s=0.3).outcome
        assert "coverage gap" not in outcome.summary
        assert any(f.get("pid") == sleeper.pid for f in outcome.findings)
    finally:
        pg_cluster.sql(f"REVOKE pg_monitor FROM {LIMITED_ROLE}")


def test_orphaned_prepared_transaction_is_flagged(pg_cluster, target_spec, holders):
    gid = f"quell-test-{pg_cluster.name}"
    holders(pg_cluster).send(f"BEGIN; SELECT txid_current(); PREPARE TRANSACTION '{gid}';").pid  # noqa: B018
    try:
        pg_cluster.wait_for("SELECT count(*) > 0 FROM pg_prepared_xacts WHERE gid = %s", (gid,))
        outcome = run_check(target_spec, "prepared_transactions", warning_s=0).outcome
        assert outcome.status == CheckStatus.WARNING
        [row] = [f for f in outcome.findings if f["gid"] == gid]
        assert row["database"] == "quell_target"
        assert f"ROLLBACK PREPARED '{gid}'" in row["fix"]
    finally:
        pg_cluster.sql(f"ROLLBACK PREPARED '{gid}'")
    assert run_check(target_spec, "prepared_transactions").outcome.status == CheckStatus.OK


def test_other_databases_sessions_are_reported_apart_and_not_graded(fresh_db, holders):
    cluster, dbname, spec = fresh_db
    # Noise on the same server, in another database: idle transactions and a long query.
    for _ in range(3):
        holders(cluster, "quell_target").send("BEGIN; SELECT 1;").wait_state(
            "state = 'idle in transaction'"
        )
    sleeper = holders(cluster, "quell_target").send("SELECT pg_sleep(60);")
    sleeper.wait_state("state = 'active' AND query_start < clock_timestamp() - interval '0.4 s'")
    # The target's own: one idle transaction.
    own = holders(cluster, dbname).send("BEGIN; SELECT 1;")
    own.wait_state("state = 'idle in transaction'")

    idle = run_check(spec, "idle_in_transaction", threshold_s=0.2, critical_s=3600).outcome
    assert idle.metrics["idle_in_transaction"] == 1  # graded by the target's own
    assert idle.metrics["idle_in_transaction_other_databases"] == 3
    mine = [f for f in idle.findings if f["scope"] == "target"]
    others = [f for f in idle.findings if f["scope"] == "other_database"]
    assert [f["pid"] for f in mine] == [own.pid]
    assert len(others) == 3 and {f["database"] for f in others} == {"quell_target"}
    assert idle.summary.startswith("1 session idle in transaction")
    assert "3 idle in transaction in other databases of the server (quell_target)" in idle.summary

    # A long query elsewhere does not make the target's long-running check fire.
    slow = run_check(spec, "long_running_queries", threshold_s=0.3).outcome
    assert slow.status == CheckStatus.OK and slow.metrics["long_running"] == 0
    assert slow.metrics["long_running_other_databases"] == 1
    assert "other databases of the server (quell_target), reported apart" in slow.summary
    [elsewhere] = slow.findings
    assert elsewhere["pid"] == sleeper.pid and elsewhere["scope"] == "other_database"

    # Connections: the target's own by state/user/...; other databases by database only.
    conns = run_check(spec, "connections").outcome
    [own_total] = [
        f for f in conns.findings if f["dimension"] == "total" and f["scope"] == "target"
    ]
    [server] = [f for f in conns.findings if f["dimension"] == "total" and f["scope"] == "server"]
    assert own_total["connections"] == 1 and conns.metrics["connections"] == 1
    assert server["connections"] >= 5 and conns.metrics["connections_other_databases"] >= 4
    [other_db] = [f for f in conns.findings if f["dimension"] == "database"]
    assert other_db == {
        "dimension": "database",
        "scope": "other_database",
        "value": "quell_target",
        "connections": 4,
    }
    states = {f["value"]: f["connections"] for f in conns.findings if f["dimension"] == "state"}
    assert states == {"idle in transaction": 1}  # the other database's sessions not mixed in
    assert f"1 of {own_total['usable']} usable connections to {dbname}" in conns.summary
    assert "other databases on the server: 4 (quell_target 4)" in conns.summary


def test_server_wide_exhaustion_by_other_databases_is_a_warning(fresh_db, holders):
    cluster, _, spec = fresh_db
    for _ in range(3):
        holders(cluster, "quell_target").send("SELECT 1;").pid  # noqa: B018 (waits for it)
    conns = run_check(spec, "connections", warning_pct=5, critical_pct=99).outcome
    assert conns.metrics["utilisation_pct"] == 0  # none of the target's own
    assert conns.status == CheckStatus.WARNING
    assert "server-wide slots nearly exhausted by other databases" in conns.summary


def test_application_roles_without_an_idle_in_transaction_timeout_are_flagged(fresh_db):
    cluster, dbname, spec = fresh_db
    app, reporting = f"{dbname}_app", f"{dbname}_reporting"
    # Only these two roles may connect to the fresh database (roles are cluster-wide).
    cluster.sql(
        f"CREATE ROLE {app} LOGIN; CREATE ROLE {reporting} LOGIN;"
        f"CREATE ROLE {dbname}_nologin NOLOGIN; CREATE ROLE {dbname}_admin LOGIN SUPERUSER;"
        f"REVOKE CONNECT ON DATABASE {dbname} FROM PUBLIC;"
        f"GRANT CONNECT ON DATABASE {dbname} TO {app}, {reporting};",
        dbname=dbname,
    )
    try:
        missing = run_check(spec, "idle_transaction_timeouts").outcome
        assert missing.status == CheckStatus.WARNING
        assert "2 application roles without an idle-in-transaction timeout" in missing.summary
        by_role = {f["role"]: f for f in missing.findings}
        assert set(by_role) == {app, reporting}  # not NOLOGIN, superuser or Quell's own
        assert by_role[app]["timeout"] == "off" and by_role[app]["set_for"] == "server"
        assert by_role[app]["fix"] == (
            f"ALTER ROLE {app} SET idle_in_transaction_session_timeout = '60s';"
        )

        # The fix for one role, and a database-wide value for the other: a pass.
        cluster.sql(
            f"ALTER ROLE {app} SET idle_in_transaction_session_timeout = '30s';"
            f"ALTER DATABASE {dbname} SET idle_in_transaction_session_timeout = '5min';",
            dbname=dbname,
        )
        fixed = run_check(spec, "idle_transaction_timeouts").outcome
        assert fixed.status == CheckStatus.OK, fixed.summary
        by_role = {f["role"]: f for f in fixed.findings}
        assert (by_role[app]["timeout"], by_role[app]["set_for"]) == ("30s", "role")
        assert (by_role[reporting]["timeout"], by_role[reporting]["set_for"]) == (
            "5min",
            "database",
        )

        # A setting for the role in this very database wins, and 0 turns it off again.
        cluster.sql(
            f"ALTER ROLE {app} IN DATABASE {dbname} SET idle_in_transaction_session_timeout = 0;",
            dbname=dbname,
        )
        off = run_check(spec, "idle_transaction_timeouts").outcome
        assert off.status == CheckStatus.WARNING
        [row] = [f for f in off.findings if f["over_threshold"]]
        assert (row["role"], row["set_for"]) == (app, "role in this database")
    finally:
        cluster.drop_database(dbname)
        for role in (app, reporting, f"{dbname}_nologin", f"{dbname}_admin"):
            cluster.sql(f"DROP ROLE IF EXISTS {role}", dbname="postgres")
