"""Connecting to a target database, safely.

Quell only reads targets. Every diagnostic session here is one psycopg connection of its own:

- connect_timeout, application_name ``quell-diagnostics`` (so Quell's sessions are recognisable
  and excluded from findings), ``prepare_threshold=None`` (transaction-mode poolers such as
  PgBouncer or Supabase's port 6543 break on server-side prepared statements);
- one ``BEGIN READ ONLY`` transaction with ``SET LOCAL`` statement_timeout, lock_timeout and
  idle_in_transaction_session_timeout (SET LOCAL, not SET: behind a pooler a session SET would
  leak into other clients' sessions);
- a savepoint per check, so one failing or timed-out check does not abort the transaction;
- a client-side watchdog that cuts the socket when the server stops answering altogether (a
  stopped or wedged server never enforces its own statement_timeout): one thread per session,
  armed before each statement and disarmed after it.

Credentials never leave this module: ``ConnectionSpec`` hides them from repr/str and every error
message is scrubbed before it is raised. What a target is and lacks (platform, pg_stat_statements,
the "Test connection" probe) is read by diagnostics.target_probe, through these sessions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg import errors as pg_errors
from psycopg.rows import dict_row

from config import outbound

APPLICATION_NAME = "quell-diagnostics"
# Prefixed to every statement Quell sends, so its own statements can be told apart (and left
# out) in pg_stat_statements, and a DBA reading pg_stat_activity sees who is asking.
SQL_MARKER = "/* quell-diagnostics */ "
# lock_timeout of one per-relation call (TargetSession.read_relation): a locked relation is
# reported as locked after this long, and the check goes on with the others.
RELATION_LOCK_MS = 50

# libpq ignores connect_timeout values below 2 seconds (it uses 2), psycopg does the same.
MIN_CONNECT_TIMEOUT_S = 2


@dataclasses.dataclass(frozen=True)
class ConnectionSpec:
    """Where and how to connect. The password and the DSN are secrets: never shown."""

    host: str = ""
    port: int = 5432
    dbname: str = ""
    user: str = ""
    password: str = dataclasses.field(default="", repr=False)
    sslmode: str = "prefer"
    options: str = ""  # libpq options string, e.g. "-c search_path=x"
    dsn: str = dataclasses.field(default="", repr=False)  # full DSN alternative (secret)

    def __repr__(self) -> str:
        return (
            f"ConnectionSpec(host={self.host!r}, port={self.port!r}, dbname={self.dbname!r}, "
            f"user={self.user!r}, password={'***' if self.password else ''!r}, "
            f"sslmode={self.sslmode!r}, options={self.options!r}, "
            f"dsn={'***' if self.dsn else ''!r})"
        )

    __str__ = __repr__

    def conninfo_params(self) -> dict[str, Any]:
        """The libpq parameters: the DSN's, overridden by the fields that are set."""
        params: dict[str, Any] = {}
        if self.dsn:
            parsed = None
            with contextlib.suppress(psycopg.ProgrammingError):
                parsed = pg_conninfo.conninfo_to_dict(self.dsn)
            if parsed is None:
                # The parser's message can echo the DSN (with its password): say only that,
                # raised outside the except block so the original is not chained either.
                raise TargetUnreachable("invalid DSN (could not be parsed)")
            params.update(parsed)
        for name in ("host", "dbname", "user", "password", "options"):
            value = getattr(self, name)
            if value:
                params[name] = value
        # port/sslmode always have a value; with a DSN only a non-default one overrides it.
        if not self.dsn or self.port != 5432 or self.host:
            params["port"] = self.port
        if not self.dsn or self.sslmode != "prefer":
            params["sslmode"] = self.sslmode
        return params

    def secrets(self) -> list[str]:
        """Every string that must never appear in output (password, DSN and its password)."""
        found = [s for s in (self.password, self.dsn) if s]
        if self.dsn:
            with contextlib.suppress(Exception):
                dsn_password = pg_conninfo.conninfo_to_dict(self.dsn).get("password")
                if dsn_password:
                    found.append(str(dsn_password))
        return found

    def describe(self) -> str:
        """host:port/dbname as user, without secrets (for messages)."""
        try:
            p = self.conninfo_params()
        except TargetUnreachable:
            return "(invalid DSN)"
        host = p.get("host") or "local socket"
        return f"{p.get('user') or '?'}@{host}:{p.get('port', 5432)}/{p.get('dbname') or '?'}"


@dataclasses.dataclass(frozen=True)
class Timeouts:
    connect_s: float = 5.0
    statement_ms: int = 5000
    lock_ms: int = 100

    @property
    def connect_timeout_s(self) -> int:
        """What libpq will actually use (whole seconds, at least 2)."""
        return max(MIN_CONNECT_TIMEOUT_S, math.ceil(self.connect_s))

    @property
    def watchdog_s(self) -> float:
        """Client-side cap on one statement: the server's own timeout plus a grace period."""
        return self.statement_ms / 1000 + max(2.0, self.statement_ms / 2000)


class TargetUnreachable(Exception):
    """The target could not be reached or refused us. The message never contains credentials."""

    def __init__(self, message: str, *, sqlstate: str | None = None, too_many_clients=False):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.too_many_clients = too_many_clients


class SessionBroken(Exception):
    """The connection died in the middle of a session (the remaining checks cannot run)."""


_PASSWORD_PATTERNS = [
    re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE),
    re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)"),
]


def scrub(message: str, spec: ConnectionSpec | None = None) -> str:
    """Remove anything that looks like a credential from a message."""
    text = str(message)
    for secret in spec.secrets() if spec else []:
        text = text.replace(secret, "***")
    text = _PASSWORD_PATTERNS[0].sub(r"\1***", text)
    text = _PASSWORD_PATTERNS[1].sub(r"\1***\3", text)
    return text.strip()


def connection_error_message(exc: BaseException, spec: ConnectionSpec) -> str:
    return scrub(str(exc) or exc.__class__.__name__, spec)


class Watchdog:
    """One thread per session that calls `cut` when an armed deadline passes.

    A threading.Timer per statement started (and joined) a thread for each of the hundreds of
    statements of a run. Here arming sets a deadline under a lock, and wakes the watcher only
    when it would otherwise sleep past that deadline: idle, it looks again one armed period
    later, so a session arming the same period statement after statement never wakes it.
    """

    def __init__(self, cut) -> None:
        self._cut = cut
        self._cond = threading.Condition()
        self._deadline: float | None = None
        # When the watcher wakes next at the latest (None: not sleeping on a timeout yet).
        self._wakes_at: float | None = None
        self._idle_s = 1.0
        self._closed = False
        self._thread: threading.Thread | None = None

    def arm(self, seconds: float) -> None:
        with self._cond:
            if self._closed:
                return
            self._deadline = time.monotonic() + seconds
            self._idle_s = seconds
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="quell-target-watchdog", daemon=True
                )
                self._thread.start()
            if self._wakes_at is None or self._wakes_at > self._deadline:
                self._cond.notify()

    def disarm(self) -> None:
        # No notify: the thread wakes when it planned to, finds no deadline and sleeps again.
        with self._cond:
            self._deadline = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._deadline = None
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=1)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _watch(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                if self._deadline is None:
                    self._wakes_at = now + self._idle_s
                    self._cond.wait(self._idle_s)
                    continue
                remaining = self._deadline - now
                if remaining > 0:
                    self._wakes_at = self._deadline
                    self._cond.wait(remaining)
                    continue
                self._deadline = None
                self._cut()


class TargetSession:
    """One read-only transaction on a target, for the checks to query through."""

    # Prefixed to every statement (a subclass for another purpose tags its own).
    sql_marker = SQL_MARKER

    def __init__(
        self, conn: psycopg.Connection, spec: ConnectionSpec, timeouts: Timeouts, connect_ms: float
    ):
        self._conn = conn
        self._spec = spec
        self.timeouts = timeouts
        self.connect_ms = connect_ms
        self.broken = False
        self._cache: dict[str, Any] = {}
        self._savepoint_seq = 0
        # A check's savepoint is released with the next one's SAVEPOINT, in its round trip.
        self._unreleased: str | None = None
        self.server_version_num: int = conn.info.server_version
        self.backend_pid: int = conn.info.backend_pid
        self._watchdog = Watchdog(self._cut_socket)

    def close(self) -> None:
        """Stop the watchdog and close the connection (idempotent, never raises)."""
        self._watchdog.close()
        with contextlib.suppress(Exception):
            self._conn.close()

    def __repr__(self) -> str:
        return (
            f"<TargetSession {self._spec.describe()} pid={self.backend_pid} "
            f"server={self.server_version_num}>"
        )

    # --- low level -------------------------------------------------------------------------
    def _cut_socket(self) -> None:
        """Watchdog: shut the socket down so a blocked read returns (server not answering)."""
        with contextlib.suppress(Exception):
            sock = socket.fromfd(self._conn.fileno(), socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.close()

    def execute(
        self, sql: str, params: Any = None, *, script: bool = False
    ) -> list[dict[str, Any]]:
        """Run one statement under the watchdog; rows as dicts (empty for no result).

        `script`: `sql` is several statements without parameters (the simple query protocol),
        sent in one round trip; the rows are the last statement's.
        """
        if self.broken:
            raise SessionBroken("the connection to the target was lost earlier in this run")
        self._watchdog.arm(self.timeouts.watchdog_s)
        lost = ""
        try:
            cursor_class = psycopg.ClientCursor if script else psycopg.Cursor
            with cursor_class(self._conn, row_factory=dict_row) as cur:
                cur.execute(self.sql_marker + sql, params, prepare=False)
                return cur.fetchall() if cur.description else []
        except psycopg.OperationalError as exc:
            if not (self._conn.closed or self._conn.broken):
                raise
            self.broken = True
            lost = connection_error_message(exc, self._spec)
        finally:
            self._watchdog.disarm()
        # Raised outside the except block: the driver's exception is not chained to ours.
        raise SessionBroken(f"the target stopped answering (connection lost): {lost}")

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts."""
        return self.execute(sql, params)

    def one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.one(sql, params)
        return next(iter(row.values())) if row else None

    @contextlib.contextmanager
    def savepoint(self, *, fresh_stats: bool = False) -> Iterator[None]:
        """A savepoint around one check: an error rolls back to it and the session goes on.

        `fresh_stats`: also clear the statistics snapshot (pg_stat_* views are a snapshot per
        transaction), so the check reads the server as it is now. The previous check's
        savepoint is released in the same round trip: a run of two dozen checks would
        otherwise spend three round trips on each for bookkeeping.
        """
        self._savepoint_seq += 1
        name = f"quell_check_{self._savepoint_seq}"
        statements = [f"SAVEPOINT {name}"]
        if self._unreleased:
            statements.insert(0, f"RELEASE SAVEPOINT {self._unreleased}")
            self._unreleased = None
        if fresh_stats:
            statements.append("SELECT pg_stat_clear_snapshot()")
        self.execute("; ".join(statements), script=True)
        try:
            yield
        except BaseException:
            # Rolling back to it ends every savepoint made inside it, released or not.
            self._unreleased = None
            if not self.broken:
                with contextlib.suppress(Exception):
                    self.execute(f"ROLLBACK TO SAVEPOINT {name}")
                    self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        else:
            self._unreleased = name

    # --- facts checks need (cached for the session) ------------------------------------------
    def _cached(self, key: str, compute):
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def server_version(self) -> str:
        return self._cached("server_version", lambda: self.scalar("SHOW server_version"))

    @property
    def current_database(self) -> str:
        return self._cached("current_database", lambda: self.scalar("SELECT current_database()"))

    @property
    def current_user(self) -> str:
        return self._cached("current_user", lambda: self.scalar("SELECT current_user"))

    @property
    def in_recovery(self) -> bool:
        return self._cached("in_recovery", lambda: bool(self.scalar("SELECT pg_is_in_recovery()")))

    def _role_facts(self) -> dict[str, bool]:
        return self.one(
            """
            SELECT r.rolsuper AS superuser,
                   pg_has_role(current_user, 'pg_monitor', 'USAGE') AS pg_monitor,
                   pg_has_role(current_user, 'pg_read_all_stats', 'USAGE') AS read_all_stats,
                   pg_has_role(current_user, 'pg_read_all_settings', 'USAGE') AS read_settings
            FROM pg_roles r WHERE r.rolname = current_user
            """
        ) or {
            "superuser": False,
            "pg_monitor": False,
            "read_all_stats": False,
            "read_settings": False,
        }

    @property
    def roles(self) -> dict[str, bool]:
        return self._cached("roles", self._role_facts)

    @property
    def is_superuser(self) -> bool:
        return bool(self.roles["superuser"])

    @property
    def can_read_all_stats(self) -> bool:
        """Whether other roles' query texts, states and statistics are visible to us."""
        return bool(self.roles["superuser"] or self.roles["read_all_stats"])

    @property
    def monitor_fix(self) -> str:
        return f"GRANT pg_monitor TO {quote_ident(self.current_user)};"

    def setting(self, name: str) -> str | None:
        """A server setting, or None when unknown or hidden from this role."""
        settings = self._cached("settings", dict)
        if name not in settings:
            settings[name] = self.scalar("SELECT setting FROM pg_settings WHERE name = %s", (name,))
        return settings[name]

    def setting_int(self, name: str, default: int = 0) -> int:
        value = self.setting(name)
        try:
            return int(value) if value is not None else default
        except ValueError:
            return default

    def extension(self, name: str) -> dict[str, Any] | None:
        """{"name", "version", "schema"} of an extension created in this database, else None."""
        return self._cached(
            f"ext:{name}",
            lambda: self.one(
                """
                SELECT e.extname AS name, e.extversion AS version, n.nspname AS schema
                FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                WHERE e.extname = %s
                """,
                (name,),
            ),
        )

    def extension_available(self, name: str) -> bool:
        """Whether the extension's files are installed on the server (CREATE EXTENSION works)."""
        return self._cached(
            f"ext_avail:{name}",
            lambda: bool(
                self.scalar("SELECT count(*) FROM pg_available_extensions WHERE name = %s", (name,))
            ),
        )

    @property
    def platform(self) -> str:
        """Managed platform detected from its settings and roles ("" for plain PostgreSQL)."""
        # Imported here: diagnostics.target_probe builds on this module.
        from .target_probe import detect_platform

        return self._cached("platform", lambda: detect_platform(self))

    def exclusively_locked_relations(self) -> dict[int, dict[str, Any]]:
        """Relations of this database held *or awaited* in ACCESS EXCLUSIVE mode (catalog locked).

        A queued ACCESS EXCLUSIVE request (an ALTER TABLE waiting behind a row lock) makes every
        later lock request on the relation queue behind it, ACCESS SHARE included: size
        functions, pg_get_indexdef and sequence reads would wait as long as the migration does.
        The checks skip these relations and say so instead of waiting. Reading pg_locks and
        casting oids to regclass takes no relation lock (verified on 15 and 18).
        """
        rows = self.query(
            """
            SELECT l.relation::bigint AS oid, l.relation::regclass::text AS relation, l.pid,
                   bool_or(l.granted) AS granted
            FROM pg_locks l
            WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
              AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND l.pid IS DISTINCT FROM pg_backend_pid()
            GROUP BY l.relation, l.pid
            ORDER BY bool_or(l.granted) DESC
            """
        )
        locked: dict[int, dict[str, Any]] = {}
        for r in rows:  # the holder, if any, names the lock; else the first waiter
            locked.setdefault(r["oid"], r)
        return locked

    def read_relation(
        self, sql: str, params: Any = None, *, lock_ms: int = RELATION_LOCK_MS
    ) -> list[dict[str, Any]] | None:
        """Rows of a query that locks one relation (pg_relation_size, pg_get_indexdef, ...), or
        None when that relation is locked by someone else.

        Runs in a savepoint with a short lock_timeout, then always rolls back to it: the
        AccessShareLock the call took is released at once (a diagnostic must not hold locks a
        migration will queue behind), and so is the SET LOCAL. Only a lock timeout is turned
        into None; any other error propagates.
        """
        self._savepoint_seq += 1
        name = f"quell_rel_{self._savepoint_seq}"
        self.execute(f"SAVEPOINT {name}")
        try:
            self.execute(f"SET LOCAL lock_timeout = {int(min(lock_ms, self.timeouts.lock_ms))}")
            return self.execute(sql, params)
        except pg_errors.LockNotAvailable:
            return None
        finally:
            if not self.broken:
                self.execute(f"ROLLBACK TO SAVEPOINT {name}")
                self.execute(f"RELEASE SAVEPOINT {name}")


def quote_ident(name: str) -> str:
    """An SQL identifier, quoted when it needs to be (for fix statements shown to people)."""
    if re.fullmatch(r"[a-z_][a-z0-9_$]*", name or ""):
        return name
    return '"' + (name or "").replace('"', '""') + '"'


def connect_target(
    spec: ConnectionSpec, timeouts: Timeouts, *, application_name: str = APPLICATION_NAME
) -> tuple[psycopg.Connection, float]:
    """A new autocommit connection (we issue BEGIN ourselves), or TargetUnreachable."""
    params = spec.conninfo_params()
    params["connect_timeout"] = timeouts.connect_timeout_s
    params["application_name"] = application_name
    # TCP keepalives so a peer that vanishes is noticed by the kernel, not after hours.
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 5)
    params.setdefault("keepalives_interval", 2)
    params.setdefault("keepalives_count", 3)
    try:
        pinned = outbound.check_database_host(
            str(params.get("host") or params.get("hostaddr") or ""), int(params.get("port") or 5432)
        )
    except outbound.OutboundRefused as exc:
        raise TargetUnreachable(f"connection to {spec.describe()} refused: {exc}") from None
    if pinned:
        # Connect to the address that was checked, whatever the name resolves to later.
        params["hostaddr"] = pinned
    started = time.monotonic()
    failure: TargetUnreachable | None = None
    try:
        conn = psycopg.Connection.connect(
            pg_conninfo.make_conninfo(**params), autocommit=True, prepare_threshold=None
        )
    except psycopg.Error as exc:
        sqlstate = getattr(exc, "sqlstate", None)
        message = connection_error_message(exc, spec)
        # libpq reports a refused login without its SQLSTATE: recognise 53300 by its texts
        # ("too many clients already", "too many connections for role/database", "remaining
        # connection slots are reserved ...").
        too_many = sqlstate == "53300" or any(
            text in message
            for text in (
                "too many clients",
                "too many connections",
                "remaining connection slots are reserved",
            )
        )
        if too_many:
            sqlstate = "53300"
        if isinstance(exc, psycopg.errors.ConnectionTimeout) or "timeout expired" in message:
            message = (
                f"connection to {spec.describe()} timed out after "
                f"{timeouts.connect_timeout_s} s: {message}"
            )
        failure = TargetUnreachable(message, sqlstate=sqlstate, too_many_clients=too_many)
    if failure is not None:
        # Raised outside the except block so the original (unscrubbed) exception is not chained.
        raise failure
    connect_ms = (time.monotonic() - started) * 1000
    _announce(conn, application_name)
    return conn, connect_ms


# Called with (pid=, backend_start=, application_name=) for every session Quell opens on a
# target; DiagnosticsConfig.ready installs diagnostics.own_sessions.remember (this module keeps
# to the target and never touches Quell's own database itself).
_session_opened_hooks: list = []


def on_session_opened(hook) -> None:
    """Call `hook` for every session opened from now on (idempotent)."""
    if hook not in _session_opened_hooks:
        _session_opened_hooks.append(hook)


def _announce(conn: psycopg.Connection, application_name: str) -> None:
    """Tell the hooks this session's identity: its pid and the server's backend_start."""
    if not _session_opened_hooks:
        return
    try:
        # A session always sees its own row, whatever its role's rights. The function with the
        # pid reads that one backend's entry; the pg_stat_activity view reads every backend's
        # (200 idle sessions cost it a millisecond here, on every run).
        row = conn.execute(
            SQL_MARKER + "SELECT backend_start FROM pg_stat_get_activity(pg_backend_pid())"
        ).fetchone()
    except psycopg.Error:
        return  # the caller finds the session broken on its first statement
    if not row or row[0] is None:
        return
    for hook in _session_opened_hooks:
        hook(pid=conn.info.backend_pid, backend_start=row[0], application_name=application_name)


def begin_statements(timeouts: Timeouts, begin: str = "BEGIN") -> str:
    """`begin` and the transaction's SET LOCAL timeouts as one string: one round trip.

    Sent without parameters, so psycopg uses the simple query protocol, which takes several
    statements at once.
    """
    return "; ".join(
        (
            begin,
            # SET LOCAL: scoped to this transaction, safe behind transaction-mode poolers.
            f"SET LOCAL statement_timeout = {int(timeouts.statement_ms)}",
            f"SET LOCAL lock_timeout = {int(timeouts.lock_ms)}",
        )
    )


def _begin(session: TargetSession, timeouts: Timeouts) -> None:
    # Should this process die mid-run, the server ends our transaction on its own.
    idle_ms = max(60_000, int(timeouts.statement_ms) * 4)
    session.execute(
        begin_statements(timeouts, "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY")
        # Catalog queries never gain from JIT, and compiling a big plan can take longer than it.
        + "; SET LOCAL jit = off"
        + f"; SET LOCAL idle_in_transaction_session_timeout = {idle_ms}"
    )


@contextlib.contextmanager
def open_session(spec: ConnectionSpec, timeouts: Timeouts = Timeouts()) -> Iterator[TargetSession]:
    """A read-only diagnostic session; TargetUnreachable if the target cannot be reached."""
    conn, connect_ms = connect_target(spec, timeouts)
    session = TargetSession(conn, spec, timeouts, connect_ms)
    try:
        setup_error = ""
        try:
            _begin(session, timeouts)
        except (psycopg.Error, SessionBroken) as exc:
            setup_error = connection_error_message(exc, spec)
        if setup_error:
            raise TargetUnreachable(f"session setup failed: {setup_error}")
        yield session
    finally:
        with contextlib.suppress(Exception):
            if not session.broken and not conn.closed:
                conn.execute("ROLLBACK")  # read-only: nothing to keep
        session.close()
