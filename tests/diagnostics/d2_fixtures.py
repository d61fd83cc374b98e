"""Fixtures for the diagnostics service, API, admin and task tests.

A scratch database on the machine's PostgreSQL (127.0.0.1:5432) is the target; two small checks
defined here read it, so these tests do not depend on the full check suite's timing. The suite
itself is exercised by the check tests and the end-to-end test.
"""

from __future__ import annotations

import os
import uuid

import psycopg
import pytest
from celery import current_app

from diagnostics.checks.base import Check, CheckOutcome, CheckStatus, Family, registry

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "postgres"}


class CounterCheck(Check):
    """Reads pg_stat_database counters: gives metrics for comparisons."""

    key = "d2_test_counters"
    title = "Test counters"
    family = Family.ERRORS

    def run(self, session):
        row = session.one(
            "SELECT xact_commit, xact_rollback, tup_returned FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
        return CheckOutcome(
            CheckStatus.OK,
            f"{row['xact_commit']} commits",
            metrics={k: int(v) for k, v in row.items()},
        )


class MarkerCheck(Check):
    """Warns about every row of the target's d2_markers table (findings a test controls)."""

    key = "d2_test_markers"
    title = "Test markers"
    family = Family.CHANGES
    default_thresholds = {"critical_at": 3}

    def run(self, session):
        rows = session.query("SELECT name, size FROM d2_markers ORDER BY name")
        if not rows:
            return CheckOutcome(CheckStatus.OK, "no markers")
        status = (
            CheckStatus.CRITICAL
            if len(rows) >= self.thresholds["critical_at"]
            else CheckStatus.WARNING
        )
        return CheckOutcome(status, f"{len(rows)} marker(s)", findings=rows)


TEST_KEYS = [CounterCheck.key, MarkerCheck.key]
TEST_SUITE = {"keys": TEST_KEYS}


@pytest.fixture
def test_checks():
    """Register the two test checks for one test."""
    added = []
    for cls in (CounterCheck, MarkerCheck):
        if cls.key not in registry.keys():  # noqa: SIM118 (a method, not a dict)
            registry.register(cls)
            added.append(cls.key)
    yield TEST_KEYS
    for key in added:
        registry._checks.pop(key, None)


@pytest.fixture(scope="session")
def target_dbname():
    """A scratch database on the local server, dropped at the end of the session."""
    name = f"quell_d2_target_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(**{**PG, "dbname": name}, autocommit=True) as conn:
        conn.execute("CREATE TABLE d2_markers (name text PRIMARY KEY, size int)")
    yield name
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@pytest.fixture
def markers(target_dbname):
    """markers.set("a", "b") replaces the target's marker rows."""

    class Markers:
        def set(self, *names, size=1):
            with psycopg.connect(**{**PG, "dbname": target_dbname}, autocommit=True) as conn:
                conn.execute("DELETE FROM d2_markers")
                for n in names:
                    conn.execute("INSERT INTO d2_markers VALUES (%s, %s)", (n, size))

    m = Markers()
    m.set()
    yield m
    m.set()


@pytest.fixture
def live_target(db, target_dbname):
    """A TargetDatabase pointing at the scratch database."""
    from tests.diagnostics.records import make_target

    return make_target(name="orders-primary", database=target_dbname, tags=["eu", "orders"])


@pytest.fixture
def eager_celery():
    """Tasks run in-process when sent (on commit): for service-level tests."""
    conf = current_app.conf
    old = conf.task_always_eager, conf.task_eager_propagates
    conf.task_always_eager, conf.task_eager_propagates = True, True
    yield
    conf.task_always_eager, conf.task_eager_propagates = old


@pytest.fixture
def sent_runs(monkeypatch):
    """Record the run ids the services enqueue instead of sending them to the broker."""
    sent: list[list[int]] = []
    monkeypatch.setattr(
        "diagnostics.services._enqueue", lambda pairs: sent.append([p[0] for p in pairs])
    )
    return sent
