"""The machine's PostgreSQL server and the sessions remediation tests plant on it (the fixtures
that use them are in tests/diagnostics/conftest.py)."""

from __future__ import annotations

import os
import time

import psycopg

HOST, PORT = "127.0.0.1", 5432
SUFFIX = f"g{os.getpid()}"
APP_ROLE = f"quell_rem_app_{SUFFIX}"
REPL_ROLE = f"quell_rem_repl_{SUFFIX}"
WEAK_ROLE = f"quell_rem_weak_{SUFFIX}"

SLEEP = "SELECT pg_sleep(60);"
IDLE_IN_TX = "BEGIN; SELECT 1;"
# A query that swallows every cancel: only terminate ends it.
STUBBORN = (
    "DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(60); "
    "EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$;"
)


class LocalServer:
    """The machine's server, shaped like tests.diagnostics.clusters.Cluster for Holder."""

    host, port = HOST, PORT

    def connect(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=HOST, port=PORT, dbname=dbname, user="postgres", autocommit=True
        )

    def sql(self, statement: str, params=None, dbname: str = "postgres"):
        with self.connect(dbname) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def wait_for(self, sql: str, params=None, *, timeout: float = 10.0, dbname="postgres"):
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql(sql, params, dbname=dbname)
            if rows and rows[0][0]:
                return rows[0][0]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {sql}")
            time.sleep(0.05)

    def backend(self, pid: int, dbname: str):
        rows = self.sql(
            "SELECT pid, backend_start, state, query FROM pg_stat_activity WHERE pid = %s",
            (pid,),
            dbname=dbname,
        )
        return rows[0] if rows else None
