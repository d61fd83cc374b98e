"""Recent schema migrations from common tools' tables, and recently changed relations."""

import pytest

from diagnostics.checks import CheckStatus
from tests.diagnostics.clusters import LIMITED_ROLE, run_check

pytestmark = pytest.mark.slow

DJANGO = """
CREATE TABLE django_migrations (id bigserial PRIMARY KEY, app varchar(255) NOT NULL,
    name varchar(255) NOT NULL, applied timestamptz NOT NULL);
INSERT INTO django_migrations (app, name, applied) VALUES
    ('orders', '0001_initial', now() - interval '30 days'),
    ('orders', '0002_add_status', now() - interval '10 minutes');
"""
PRISMA = """
CREATE TABLE _prisma_migrations (id varchar(36) PRIMARY KEY, checksum varchar(64) NOT NULL,
    finished_at timestamptz, migration_name varchar(255) NOT NULL, logs text,
    rolled_back_at timestamptz, started_at timestamptz NOT NULL DEFAULT now(),
    applied_steps_count integer NOT NULL DEFAULT 0);
INSERT INTO _prisma_migrations (id, checksum, finished_at, migration_name, started_at,
    applied_steps_count) VALUES
    ('a', 'x', now() - interval '5 days', '20240101_init', now() - interval '5 days', 1),
    ('b', 'y', now() - interval '2 minutes', '20250102_add_index', now() - interval '3 minutes', 1);
"""


def test_recent_rows_in_prisma_and_django_migrations_warn(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(DJANGO + PRISMA, dbname=dbname)

    outcome = run_check(spec, "recent_migrations").outcome

    assert outcome.status == CheckStatus.WARNING
    recent = {(f["tool"], f["migration"]) for f in outcome.findings if f["recent"]}
    assert recent == {("django", "orders.0002_add_status"), ("prisma", "20250102_add_index")}
    assert "2 migration(s) in the last 24.0 h" in outcome.summary
    assert outcome.metrics["recent_migrations"] == 2
    # Outside the window: nothing recent.
    assert run_check(spec, "recent_migrations", window_s=60).outcome.status == CheckStatus.OK


def test_unfinished_prisma_migration_and_flyway_failure_are_critical(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        PRISMA
        + """
        INSERT INTO _prisma_migrations (id, checksum, migration_name, started_at)
        VALUES ('c', 'z', '20250103_broken', now() - interval '1 hour');
        CREATE SCHEMA ops;
        CREATE TABLE ops.flyway_schema_history (installed_rank int PRIMARY KEY,
            version varchar(50), description varchar(200) NOT NULL, type varchar(20),
            script varchar(1000), checksum int, installed_by varchar(100),
            installed_on timestamp NOT NULL DEFAULT now(), execution_time int,
            success boolean NOT NULL);
        INSERT INTO ops.flyway_schema_history VALUES
            (1, '1', 'init', 'SQL', 'V1__init.sql', 0, 'app', now() - interval '9 days', 5, true),
            (2, '2', 'add col', 'SQL', 'V2__add_col.sql', 0, 'app', now(), 5, false);
    """,
        dbname=dbname,
    )

    outcome = run_check(spec, "recent_migrations").outcome

    assert outcome.status == CheckStatus.CRITICAL
    failed = {(f["tool"], f["migration"].strip()) for f in outcome.findings if f["failed"]}
    assert failed == {("prisma", "20250103_broken"), ("flyway", "2 add col")}
    assert any(f["table"] == "ops.flyway_schema_history" for f in outcome.findings)


def test_tools_without_apply_times_show_their_current_version(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql(
        "CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY);"
        "INSERT INTO alembic_version VALUES ('ae1027a6acf');"
        "CREATE TABLE schema_migrations (version varchar PRIMARY KEY);"
        "INSERT INTO schema_migrations VALUES ('20240105101500');",
        dbname=dbname,
    )
    outcome = run_check(spec, "recent_migrations").outcome
    assert outcome.status == CheckStatus.OK
    assert "records no apply time: current version ae1027a6acf" in outcome.summary
    [rails] = [f for f in outcome.findings if f["tool"] == "rails/dbmate"]
    assert rails["written_at"].startswith("2024-01-05T10:15:00")


def test_no_migration_table_is_skipped(target_spec):
    outcome = run_check(target_spec, "recent_migrations").outcome
    assert outcome.status == CheckStatus.SKIPPED


def test_unreadable_migration_table_is_a_coverage_gap(fresh_db):
    cluster, dbname, _ = fresh_db
    cluster.sql(DJANGO, dbname=dbname)
    outcome = run_check(cluster.spec(dbname, user=LIMITED_ROLE), "recent_migrations").outcome
    assert outcome.status == CheckStatus.WARNING
    assert "coverage gap" in outcome.summary
    assert outcome.fix == f"GRANT SELECT ON public.django_migrations TO {LIMITED_ROLE};"


def test_recently_altered_relation_is_reported_by_commit_timestamp(fresh_db):
    cluster, dbname, spec = fresh_db
    cluster.sql("CREATE TABLE customers (id int)", dbname=dbname)
    cluster.sql("ALTER TABLE customers ADD COLUMN email text", dbname=dbname)

    outcome = run_check(spec, "schema_changes").outcome

    assert outcome.status == CheckStatus.WARNING
    [row] = [f for f in outcome.findings if f["relation"] == "customers"]
    assert "column" in row["what_changed"]
    assert row["age_s"] < 60
    # Objects created by extensions (pg_stat_statements' views) are not the schema's changes.
    assert not any(f["relation"].startswith("pg_stat_statements") for f in outcome.findings)


def test_schema_changes_say_postgres_cannot_tell_without_commit_timestamps(pg_nopreload):
    outcome = run_check(pg_nopreload.spec("quell_target"), "schema_changes").outcome
    assert outcome.status == CheckStatus.SKIPPED
    assert "cannot tell" in outcome.summary
    assert "track_commit_timestamp = on" in outcome.fix
