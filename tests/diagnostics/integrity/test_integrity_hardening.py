"""Integrity checks against a real throwaway cluster (issue 10, item 2): the session they run in
is read-only with SET LOCAL statement and lock timeouts, a target's error never carries row
data or file contents into a result viewers read, and "Test connection" warns about a superuser
role and names the least-privilege one (whose recipe in docs/diagnostics.md is run here)."""

import os
import pwd
import re
from pathlib import Path

import pytest

from diagnostics.integrity import services as integrity
from diagnostics.integrity.models import IntegrityResult
from diagnostics.target_probe import probe
from tests.diagnostics.clusters import LIMITED_ROLE, OS_USER
from tests.diagnostics.records import make_target

SECRET_LINE = "TOP-SECRET-quell-7c1e"


@pytest.fixture
def cluster_db(pg15):
    dbname = f"quell_h{os.getpid()}"
    pg15.drop_database(dbname)
    pg15.create_database(dbname, pg_stat_statements=False)
    pg15.sql(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text);"
        f"INSERT INTO notes (body) VALUES ('{SECRET_LINE}');"
        # What a check sees of its own session, through a view the target's owner defined.
        "CREATE VIEW session_settings AS SELECT "
        "current_setting('statement_timeout') AS statement_timeout, "
        "current_setting('lock_timeout') AS lock_timeout, "
        "current_setting('transaction_read_only') AS read_only",
        dbname=dbname,
    )
    yield pg15, dbname
    pg15.drop_database(dbname)


def _target(cluster, dbname, user="postgres"):
    return make_target(host=cluster.host, port=cluster.port, database=dbname, user=user)


def _run(target):
    run = integrity.integrity_run_start(target_id=target.pk)
    run = integrity.integrity_run_execute(run_id=run.pk)
    return {r.check_name: r for r in IntegrityResult.objects.filter(run=run)}


def test_checks_run_read_only_with_set_local_timeouts(db, cluster_db, settings):
    cluster, dbname = cluster_db
    settings.QUELL_INTEGRITY_STATEMENT_TIMEOUT_MS = 4321
    settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS = 123
    target = _target(cluster, dbname)
    integrity.integrity_check_create(
        target_id=target.pk, name="default", kind="business_rule",
        query="SELECT * FROM session_settings",
    )  # fmt: skip
    integrity.integrity_check_create(
        target_id=target.pk, name="own timeout", kind="business_rule",
        query="SELECT * FROM session_settings", timeout_ms=2500,
    )  # fmt: skip
    results = _run(target)
    default, own = results["default"], results["own timeout"]
    assert default.status == "violation", default.error
    assert default.sample_columns == ["statement_timeout", "lock_timeout", "read_only"]
    assert default.sample == [["4321ms", "123ms", "on"]]
    assert own.sample == [["2500ms", "123ms", "on"]]
    # SET LOCAL, not SET: nothing is left on the server's defaults for the role.
    assert cluster.sql("SHOW statement_timeout", dbname=dbname) == [("0",)]


def test_a_targets_error_does_not_carry_row_data_or_file_contents(db, cluster_db):
    cluster, dbname = cluster_db
    secret_file = cluster.datadir / "quell_secret.txt"
    secret_file.write_text(SECRET_LINE + "\n")
    if os.geteuid() == 0:
        pw = pwd.getpwnam(OS_USER)
        os.chown(secret_file, pw.pw_uid, pw.pw_gid)
    # A file read hidden in a view (a superuser target may read files): the cast fails and
    # PostgreSQL's message quotes what it read.
    cluster.sql(
        "CREATE VIEW leaky AS SELECT id, pg_read_file('quell_secret.txt')::int AS n FROM notes",
        dbname=dbname,
    )
    target = _target(cluster, dbname)
    integrity.integrity_check_create(
        target_id=target.pk, name="cast", kind="business_rule", table_name="notes",
        predicate="body::int > 0",
    )  # fmt: skip
    integrity.integrity_check_create(
        target_id=target.pk, name="file", kind="business_rule", table_name="leaky",
        predicate="n > 0",
    )  # fmt: skip
    integrity.integrity_check_create(
        target_id=target.pk, name="missing column", kind="business_rule", table_name="notes",
        predicate="no_such_column > 0",
    )  # fmt: skip
    results = _run(target)
    for name in ("cast", "file"):
        error = results[name].error
        assert results[name].status == "error"
        assert SECRET_LINE not in error and "22P02" in error, error
        assert "invalid text representation" in error
    # An error about the definition itself keeps PostgreSQL's words.
    assert 'column "no_such_column" does not exist' in results["missing column"].error


def test_test_connection_warns_about_a_superuser_role(db, cluster_db, responder_api):
    cluster, dbname = cluster_db
    result = probe(cluster.spec(dbname))
    assert result["reachable"] and [w["what"] for w in result["warnings"]] == ["superuser"]
    assert "pg_monitor" in result["warnings"][0]["why"]
    assert "quell_diagnostics" in result["warnings"][0]["fix"]
    assert probe(cluster.spec(dbname, user=LIMITED_ROLE))["warnings"] == []

    target = _target(cluster, dbname)
    body = responder_api.post(f"/api/v1/diagnostics/targets/{target.pk}/test-connection/").json()
    assert body["warnings"][0]["what"] == "superuser"


def test_test_connection_page_and_admin_show_the_warning(db, cluster_db, admin_user):
    from django.test import Client

    cluster, dbname = cluster_db
    target = _target(cluster, dbname)
    client = Client()
    client.force_login(admin_user)
    page = client.post(f"/diagnostics/targets/{target.pk}/test-connection/", follow=True)
    text = page.content.decode()
    assert "Warning: superuser" in text and "least-privilege" in text
    admin = client.post(
        "/admin/diagnostics/targetdatabase/",
        {"action": "test_connection", "_selected_action": [target.pk]},
        follow=True,
    )
    assert "is a superuser" in admin.content.decode()


def test_the_documented_least_privilege_role_works_and_is_not_warned_about(db, cluster_db):
    cluster, dbname = cluster_db
    docs = (Path(__file__).resolve().parents[3] / "docs" / "diagnostics.md").read_text()
    recipe = re.search(r"### A least-privilege role.*?```sql\n(.*?)```", docs, re.S).group(1)
    recipe = recipe.replace("DATABASE app", f'DATABASE "{dbname}"')
    cluster.sql("DROP ROLE IF EXISTS quell_diagnostics", dbname="postgres")
    try:
        for statement in filter(str.strip, recipe.split(";")):
            cluster.sql(statement, dbname=dbname)
        spec = cluster.spec(dbname, user="quell_diagnostics")
        result = probe(spec)
        assert result["reachable"] and result["warnings"] == []
        assert "pg_monitor" not in [m["what"] for m in result["missing"]]
        target = _target(cluster, dbname, user="quell_diagnostics")
        integrity.integrity_check_create(
            target_id=target.pk, name="notes", kind="row_count", table_name="notes"
        )
        notes = _run(target)["notes"]
        assert (notes.status, notes.count) == ("ok", 1), notes.error
    finally:
        cluster.sql("DROP OWNED BY quell_diagnostics CASCADE", dbname=dbname)
        cluster.sql("DROP ROLE IF EXISTS quell_diagnostics", dbname="postgres")
