"""Target sessions and the connection probe: read-only, bounded, and never leaking secrets."""

import json
import time

import psycopg
import pytest

from diagnostics.target import (
    APPLICATION_NAME,
    ConnectionSpec,
    TargetUnreachable,
    Timeouts,
    open_session,
)
from diagnostics.target_probe import probe
from tests.diagnostics.clusters import LIMITED_ROLE, PASSWORD, PASSWORD_ROLE

pytestmark = pytest.mark.slow

FAST = Timeouts(connect_s=2, statement_ms=1000, lock_ms=50)


def test_session_is_read_only_with_timeouts_and_tagged(target_spec):
    with open_session(target_spec, FAST) as session:
        assert session.server_version_num // 10000 in (15, 18)
        settings = session.one(
            "SELECT current_setting('transaction_read_only') AS ro, "
            "current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, "
            "current_setting('application_name') AS app"
        )
        assert settings == {"ro": "on", "st": "1s", "lt": "50ms", "app": APPLICATION_NAME}
        assert session.backend_pid == session.scalar("SELECT pg_backend_pid()")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), session.savepoint():
            session.execute("CREATE TABLE must_not_exist (x int)")
        # The savepoint rolled back: the session goes on.
        assert session.scalar("SELECT 1") == 1


def test_session_facts_for_checks(target_spec):
    with open_session(target_spec, FAST) as session:
        assert session.is_superuser and session.can_read_all_stats
        assert session.setting("max_connections") == "60"
        assert session.setting("no_such_setting") is None
        ext = session.extension("pg_stat_statements")
        assert ext["schema"] == "public" and ext["version"]
        assert session.extension("no_such_extension") is None
        assert session.platform == ""
        assert session.exclusively_locked_relations() == {}


def test_probe_reports_version_latency_and_nothing_missing_for_a_superuser(pg_cluster, target_spec):
    result = probe(target_spec, FAST)
    assert result["reachable"] is True and result["error"] == ""
    assert result["server_version_num"] == pg_cluster.version_num
    assert result["latency_ms"] > 0 and result["in_recovery"] is False
    assert result["platform"] == "" and result["missing"] == []


def test_probe_lists_missing_pg_monitor_with_the_grant(pg_cluster):
    result = probe(pg_cluster.spec("quell_target", user=LIMITED_ROLE), FAST)
    assert result["reachable"] is True
    [missing] = result["missing"]
    assert missing == {
        "what": "pg_monitor",
        "why": missing["why"],
        "fix": f"GRANT pg_monitor TO {LIMITED_ROLE};",
    }


def test_probe_lists_missing_pg_stat_statements_with_the_fix(pg_nopreload):
    not_created = probe(pg_nopreload.spec("quell_noext"), FAST)
    [missing] = not_created["missing"]
    assert missing["what"] == "pg_stat_statements"
    assert "CREATE EXTENSION pg_stat_statements" in missing["fix"]
    not_loaded = probe(pg_nopreload.spec("quell_target"), FAST)
    [missing] = not_loaded["missing"]
    assert "shared_preload_libraries" in missing["fix"]


def test_probe_of_a_closed_port_fails_fast(closed_port):
    host, port = closed_port
    started = time.monotonic()
    result = probe(ConnectionSpec(host=host, port=port, dbname="x", user="u"), FAST)
    assert time.monotonic() - started < 1.0
    assert result["reachable"] is False
    assert "refused" in result["error"].lower() or "failed" in result["error"].lower()


def test_probe_of_a_silent_server_gives_up_at_connect_timeout(silent_listener):
    host, port = silent_listener
    started = time.monotonic()
    result = probe(ConnectionSpec(host=host, port=port, dbname="x", user="u"), FAST)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 4.0  # connect_timeout 2 s (libpq's minimum), not forever
    assert result["reachable"] is False
    assert "timed out" in result["error"]


def test_password_authentication_works_and_failure_names_no_secret(pg_cluster):
    good = probe(pg_cluster.spec("quell_target", user=PASSWORD_ROLE, password=PASSWORD), FAST)
    assert good["reachable"] is True
    bad = probe(pg_cluster.spec("quell_target", user=PASSWORD_ROLE, password=PASSWORD + "x"), FAST)
    assert bad["reachable"] is False
    assert "password authentication failed" in bad["error"]
    assert PASSWORD not in json.dumps(bad)


def _secret_specs(port):
    dsn = f"postgresql://{PASSWORD_ROLE}:{PASSWORD}@127.0.0.1:{port}/quell_target"
    return [
        ConnectionSpec(host="127.0.0.1", port=port, dbname="d", user="u", password=PASSWORD),
        ConnectionSpec(dsn=dsn),
        ConnectionSpec(dsn=f"host=127.0.0.1 port={port} password={PASSWORD} user=u"),
        # Unparseable DSNs: libpq's parser would echo the text back.
        ConnectionSpec(dsn=f"host=127.0.0.1 password='{PASSWORD} bogus"),
        ConnectionSpec(dsn=f"host=127.0.0.1 password={PASSWORD} nosuchoption=1"),
    ]


def test_credentials_never_appear_in_repr_exceptions_or_probe_output(closed_port):
    _, port = closed_port
    for spec in _secret_specs(port):
        assert PASSWORD not in repr(spec) and PASSWORD not in str(spec)
        assert PASSWORD not in spec.describe()
        with pytest.raises(TargetUnreachable) as caught, open_session(spec, FAST):
            pass
        exc = caught.value
        assert PASSWORD not in str(exc) and PASSWORD not in repr(exc)
        assert exc.__cause__ is None and exc.__context__ is None  # nothing chained to leak
        result = probe(spec, FAST)
        assert result["reachable"] is False and result["error"]
        assert PASSWORD not in json.dumps(result)


def test_credentials_never_appear_in_run_results(closed_port):
    from diagnostics.checks import registry
    from diagnostics.runner import run_checks

    _, port = closed_port
    for spec in _secret_specs(port):
        for execution in run_checks(spec, registry.all(), timeouts=FAST):
            dumped = json.dumps(
                [
                    execution.outcome.summary,
                    execution.outcome.error,
                    execution.outcome.findings,
                    execution.outcome.fix,
                ]
            )
            assert PASSWORD not in dumped


def test_dsn_parts_are_overridden_by_fields_that_are_set(pg_cluster):
    dsn = "postgresql://nobody@127.0.0.1:1/wrong_db?sslmode=disable"
    spec = ConnectionSpec(dsn=dsn, port=pg_cluster.port, dbname="quell_target", user="postgres")
    params = spec.conninfo_params()
    assert params["port"] == pg_cluster.port and params["dbname"] == "quell_target"
    assert params["user"] == "postgres" and params["sslmode"] == "disable"
    with open_session(spec, FAST) as session:
        assert session.current_database == "quell_target"


@pytest.mark.parametrize(
    ("option", "platform"),
    [
        ("-c rds.extensions=pg_stat_statements", "rds"),
        ("-c azure.extensions=pg_stat_statements", "azure"),
        ("-c cloudsql.iam_authentication=on", "gcp"),
        ("-c neon.timeline_id=abc", "neon"),
    ],
)
def test_managed_platform_is_detected_from_its_settings(pg15, option, platform):
    # A managed platform leaves its own settings behind; the same setting passed through the
    # connection's libpq options stands in for one here.
    spec = ConnectionSpec(
        host=pg15.host,
        port=pg15.port,
        dbname="quell_target",
        user="postgres",
        sslmode="disable",
        options=option,
    )
    assert probe(spec, FAST)["platform"] == platform


def test_aurora_skips_wal_based_replication_checks_saying_why(pg15):
    from diagnostics.checks import registry
    from diagnostics.runner import run_checks

    # Aurora has aurora_version(); plant one in a scratch database.
    pg15.create_database("quell_aurora_like", pg_stat_statements=False)
    try:
        pg15.sql(
            "CREATE FUNCTION aurora_version() RETURNS text LANGUAGE sql AS $$ SELECT '3.04.0' $$",
            dbname="quell_aurora_like",
        )
        spec = pg15.spec("quell_aurora_like")
        assert probe(spec, FAST)["platform"] == "aurora"
        results = run_checks(
            spec,
            [registry.get("replication_lag"), registry.get("replication_slots")],
            timeouts=FAST,
        )
    finally:
        pg15.drop_database("quell_aurora_like")
    for execution in results:
        assert execution.outcome.status == "skipped"
        assert "Aurora" in execution.outcome.summary
