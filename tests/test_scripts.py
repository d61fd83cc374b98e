"""scripts/: the database/broker choice (scripts/quell_env.py), and scripts/quell_run.py: the
per-install secrets, the admin password, the Procfile under honcho and the connection budget.
Real servers throughout: the machine's PostgreSQL and Redis, and the embedded ones the scripts
start when nothing answers."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import quell_env  # noqa: E402
import quell_run  # noqa: E402

SERVER = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"


def _dead_port() -> int:
    return quell_env.free_port()  # bound and released: nothing listens there


@pytest.fixture
def scratch_database():
    """A database name that does not exist yet; dropped afterwards."""
    name = f"quell_scripts_{uuid.uuid4().hex[:10]}"
    yield name
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_exists(name: str) -> bool:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        return bool(conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).rowcount)


def _quiet(_line: str) -> None:
    pass


# --- choice ----------------------------------------------------------------------------------


def test_choose_prefers_environment_urls_and_creates_their_database(tmp_path, scratch_database):
    env = {"DATABASE_URL": f"{SERVER}/{scratch_database}", "REDIS_URL": f"{REDIS}/2"}
    choice = quell_env.choose(
        env,
        var_dir=tmp_path,
        local_database_url=f"postgres://postgres@127.0.0.1:{_dead_port()}/quell",
        local_redis_url=f"redis://127.0.0.1:{_dead_port()}",
        log=_quiet,
    )
    assert choice.database_url == env["DATABASE_URL"]
    assert choice.redis_url == env["REDIS_URL"]
    assert (choice.database_source, choice.redis_source) == ("environment", "environment")
    assert choice.started == []
    assert _database_exists(scratch_database)
    assert not (tmp_path / "embedded").exists()


def test_choose_uses_local_servers_when_they_answer(tmp_path, scratch_database):
    for profile, redis_db in (("run", 0), ("test", 1)):
        choice = quell_env.choose(
            {},
            profile=profile,
            var_dir=tmp_path,
            local_database_url=f"{SERVER}/{scratch_database}",
            local_redis_url=REDIS,
            log=_quiet,
        )
        assert choice.database_source == "local server"
        assert choice.redis_source == "local server"
        assert choice.database_url == f"{SERVER}/{scratch_database}"
        assert choice.redis_url == f"{REDIS}/{redis_db}"
        assert choice.started == []
    assert _database_exists(scratch_database)


def test_choose_refuses_an_environment_url_that_does_not_answer(tmp_path):
    env = {"DATABASE_URL": f"postgres://postgres:s3cret@127.0.0.1:{_dead_port()}/quell"}
    with pytest.raises(quell_env.SetupError) as caught:
        quell_env.choose(env, var_dir=tmp_path, log=_quiet)
    message = str(caught.value)
    assert "DATABASE_URL" in message and "does not answer" in message
    assert "s3cret" not in message  # never print passwords
    assert not (tmp_path / "embedded").exists()


def test_choose_refuses_a_redis_url_that_does_not_answer(tmp_path):
    env = {
        "DATABASE_URL": f"{SERVER}/postgres",
        "REDIS_URL": f"redis://127.0.0.1:{_dead_port()}/0",
    }
    with pytest.raises(quell_env.SetupError, match=r"REDIS_URL .* does not answer"):
        quell_env.choose(env, var_dir=tmp_path, log=_quiet)


@pytest.mark.slow
def test_choose_starts_embedded_servers_when_nothing_answers_and_stops_them(tmp_path):
    lines: list[str] = []
    started = time.monotonic()
    choice = quell_env.choose(
        {},
        profile="test",
        var_dir=tmp_path,
        local_database_url=f"postgres://postgres@127.0.0.1:{_dead_port()}/quell",
        local_redis_url=f"redis://127.0.0.1:{_dead_port()}",
        log=lines.append,
    )
    try:
        assert time.monotonic() - started < 10
        assert choice.database_source.startswith("embedded")
        assert choice.redis_source.startswith("embedded")
        assert [server.kind for server in choice.started] == ["postgres", "redis"]
        with psycopg.connect(choice.database_url, connect_timeout=3) as conn:
            assert conn.info.server_version >= 180000
            assert conn.info.dbname == "quell"
            preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
            assert "pg_stat_statements" in preload
        assert choice.redis_url.endswith("/1")
        assert redis.Redis.from_url(choice.redis_url).ping()
        assert any("started embedded PostgreSQL" in line for line in lines)
        assert any("started embedded Redis" in line for line in lines)
        assert (tmp_path / "embedded" / "test" / "postgres" / "PG_VERSION").exists()
    finally:
        choice.stop()
    assert choice.started == []
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(choice.database_url, connect_timeout=2)
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(choice.redis_url, socket_connect_timeout=1).ping()
    assert not list((tmp_path / "embedded" / "test").glob("*.owner.json"))

    # A second start keeps the data directory and, while they are free, the same ports.
    again = quell_env.choose(
        {},
        profile="test",
        var_dir=tmp_path,
        local_database_url=f"postgres://postgres@127.0.0.1:{_dead_port()}/quell",
        local_redis_url=f"redis://127.0.0.1:{_dead_port()}",
        log=lines.append,
    )
    try:
        assert (again.database_url, again.redis_url) == (choice.database_url, choice.redis_url)
        assert sum("initialising" in line for line in lines) == 1
    finally:
        again.stop()


def test_embedded_server_refuses_a_directory_a_live_process_owns(tmp_path):
    directory = tmp_path / "embedded" / "run" / "redis"
    directory.mkdir(parents=True)
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (directory.parent / "redis.owner.json").write_text(f'{{"pid": {owner.pid}}}')
        with pytest.raises(quell_env.SetupError, match=f"running process {owner.pid}"):
            quell_env.EmbeddedRedis(directory, _quiet).start()
    finally:
        owner.kill()
        owner.wait()


def test_redact_hides_passwords_only():
    assert quell_env.redact("postgres://u:pw@h:5433/db") == "postgres://u:***@h:5433/db"
    assert quell_env.redact("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert quell_env.redact("postgres://u@h/db") == "postgres://u@h/db"
    assert "pw" not in " ".join(
        quell_env.Choice("postgres://u:pw@h/db", "redis://:pw@h/0", "environment", "x").lines()
    )


def test_exec_exports_the_choice_and_returns_the_commands_exit_code(scratch_database):
    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{scratch_database}",
        "REDIS_URL": f"{REDIS}/2",
    }
    probe = "import os, sys; print(os.environ['DATABASE_URL']); sys.exit(3)"
    wrapper = [sys.executable, str(ROOT / "scripts" / "quell_env.py"), "exec", "--"]
    result = subprocess.run(
        [*wrapper, sys.executable, "-c", probe],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 3
    assert f"{SERVER}/{scratch_database}" in result.stdout
    assert f"database: PostgreSQL postgres@127.0.0.1:5432/{scratch_database}" in result.stdout


# --- supervision (honcho) -------------------------------------------------------------------


def _sleeper(pid_file: Path) -> str:
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    return "exec " + shlex.join([sys.executable, "-c", code, str(pid_file)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has exited all the same.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_for(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_the_procfile_names_web_worker_and_beat_with_gunicorn_and_no_autoreload():
    processes = quell_run.procfile_processes()
    assert list(processes) == ["web", "worker", "beat"]
    assert "gunicorn" in processes["web"] and "runserver" not in processes["web"]
    assert "celery -A config worker" in processes["worker"]
    assert "celery -A config beat" in processes["beat"]


@pytest.mark.parametrize(
    ("ending", "code", "message"),
    [
        ("sys.exit(4)", 4, "crasher stopped (rc=4)"),
        ("os.kill(os.getpid(), 9)", 128 + 9, "crasher stopped (rc=-9)"),
    ],
)
def test_supervisor_stops_the_others_when_one_child_dies(tmp_path, capsys, ending, code, message):
    pid_file = tmp_path / "sleeper.pid"
    crasher = f"import os, sys, time; time.sleep(1); {ending}"
    processes = {
        "sleeper": _sleeper(pid_file),
        "crasher": "exec " + shlex.join([sys.executable, "-c", crasher]),
    }
    url = f"http://127.0.0.1:{_dead_port()}/"
    try:
        returned = quell_run.Supervisor(processes, url=url, banner=["ready"]).run()
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert returned == code
    assert not _alive(int(_wait_for(pid_file)))
    out = capsys.readouterr().out
    assert message in out
    assert "sending SIGTERM to sleeper" in out
    assert "all Quell processes stopped" in out
    # Every line a process printed carries its name.
    assert all(
        re.match(r"\d\d:\d\d:\d\d (sleeper|crasher|system|quell) +\| ", line)
        for line in out.splitlines()
        if not line.startswith("[quell]")
    )


HARNESS = """
import shlex, sys
sys.path.insert(0, sys.argv[1])
import quell_run as q
sleeper = "exec " + shlex.join([sys.executable, "-c", sys.argv[4]])
processes = {
    "web": "exec " + shlex.join([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                  sys.argv[2]]),
    "a": sleeper + " " + sys.argv[3] + "/a.pid",
    "b": sleeper + " " + sys.argv[3] + "/b.pid",
}
url = f"http://127.0.0.1:{sys.argv[2]}/"
sys.exit(q.Supervisor(processes, url=url, banner=["READY"]).run())
"""


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_supervisor_stops_every_child_on_a_signal(tmp_path, signum, code):
    port = _dead_port()
    sleeper = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    proc = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(ROOT / "scripts"), str(port), str(tmp_path), sleeper],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        for line in proc.stdout:
            if "READY" in line:
                break
        pids = [int(_wait_for(tmp_path / f"{name}.pid")) for name in ("a", "b")]
        assert all(_alive(pid) for pid in pids)
        proc.send_signal(signum)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code
    assert f"{signal.Signals(signum).name} received" in out
    assert "all Quell processes stopped" in out
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


# --- per-install secrets ---------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_secrets_are_generated_once_private_and_keep_the_legacy_key(tmp_path, monkeypatch):
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    path = tmp_path / "var" / "secrets.env"
    first = quell_run.ensure_secrets(path)
    assert _mode(path) == 0o600
    assert len(first["DJANGO_SECRET_KEY"]) >= 50
    primary, legacy = first["QUELL_FERNET_KEYS"].split(",")
    assert legacy == quell_run.derive_legacy_fernet_key(quell_run.LEGACY_DEV_SECRET_KEY)
    assert primary != legacy
    Fernet(primary.encode())  # a well-formed key
    path.chmod(0o644)
    assert quell_run.ensure_secrets(path) == first  # reused, not regenerated
    assert _mode(path) == 0o600
    assert quell_run.ensure_secrets(tmp_path / "other.env") != first  # per install


@pytest.mark.django_db
def test_credentials_under_the_old_derived_key_decrypt_until_rotation_retires_it(
    settings, tmp_path, monkeypatch
):
    from django.core.management import call_command

    from diagnostics import crypto
    from diagnostics.models import TargetDatabase
    from tests.diagnostics.records import make_target

    # Stored the way installs did before: a key derived from the public development key.
    settings.QUELL_FERNET_KEYS = [crypto.derive_dev_key(quell_run.LEGACY_DEV_SECRET_KEY)]
    target = make_target(password="stored-before")
    monkeypatch.delenv("DJANGO_SECRET_KEY", raising=False)
    keys = quell_run.ensure_secrets(tmp_path / "secrets.env")["QUELL_FERNET_KEYS"].split(",")
    settings.QUELL_FERNET_KEYS = keys
    assert TargetDatabase.objects.get(pk=target.pk).to_connection_spec().password == "stored-before"

    out = io.StringIO()
    call_command("quell_rotate_keys", stdout=out)
    assert "1 re-encrypted" in out.getvalue()
    assert "1 other key(s) in QUELL_FERNET_KEYS are no longer needed" in out.getvalue()
    settings.QUELL_FERNET_KEYS = keys[:1]  # the legacy key is gone
    assert TargetDatabase.objects.get(pk=target.pk).to_connection_spec().password == "stored-before"


def _import_dev_settings(
    env: dict[str, str], code: str = "print(s.SECRET_KEY)"
) -> subprocess.CompletedProcess:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "QUELL_")) and k != "EMAIL_URL"
    }
    code = "import django; django.setup(); from django.conf import settings as s; " + code
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings.dev", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_dev_settings_refuse_to_start_without_a_key_and_read_the_secrets_file(tmp_path):
    missing = _import_dev_settings({"QUELL_SECRETS_FILE": str(tmp_path / "none.env")})
    assert missing.returncode != 0
    assert "DJANGO_SECRET_KEY is not set" in missing.stderr
    assert "scripts/run" in missing.stderr
    secrets_file = tmp_path / "secrets.env"
    values = quell_run.ensure_secrets(secrets_file)
    found = _import_dev_settings({"QUELL_SECRETS_FILE": str(secrets_file)})
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == values["DJANGO_SECRET_KEY"]


def test_dev_settings_print_mail_unless_a_mail_server_is_named(tmp_path):
    secrets_file = tmp_path / "secrets.env"
    quell_run.ensure_secrets(secrets_file)
    send = (
        "from django.core.mail import send_mail; "
        "send_mail('Confirm your subscription', 'Follow the link', 'quell@localhost', "
        "['oncall@example.com'])"
    )
    printed = _import_dev_settings({"QUELL_SECRETS_FILE": str(secrets_file)}, send)
    assert printed.returncode == 0, printed.stderr
    assert "Subject: Confirm your subscription" in printed.stdout
    assert "To: oncall@example.com" in printed.stdout
    named = _import_dev_settings(
        {"QUELL_SECRETS_FILE": str(secrets_file), "EMAIL_URL": "smtp://127.0.0.1:2525"},
        "print(s.EMAIL_BACKEND, s.EMAIL_PORT)",
    )
    assert named.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "2525"]


# --- scripts/run, for real -------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for proc_stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = proc_stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(proc_stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _run_env(tmp_path: Path, database: str, port: int, **extra) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{database}",
        "REDIS_URL": f"{REDIS}/2",
        "QUELL_PORT": str(port),
        "QUELL_SECRETS_FILE": str(tmp_path / "secrets.env"),
        "QUELL_ADMIN_PASSWORD_FILE": str(tmp_path / "admin-password"),
        **extra,
    }
    for name in ("DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY", "QUELL_FERNET_KEYS", "EMAIL_URL"):
        env.pop(name, None)
    return env


class _Run:
    """scripts/run in a terminal of its own, its output collected line by line."""

    def __init__(self, env: dict[str, str], *args: str):
        self.proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run"), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a terminal of its own: Ctrl-C goes to its process group
        )
        self.lines: list[str] = []

    def until(self, text: str, timeout: float = 150) -> str:
        deadline = time.monotonic() + timeout
        for line in self.proc.stdout:
            self.lines.append(line)
            if text in line or time.monotonic() > deadline:
                break
        return "".join(self.lines)

    def rest(self, timeout: float = 60) -> str:
        out, _ = self.proc.communicate(timeout=timeout)
        self.lines.append(out)
        return "".join(self.lines)

    def kill_all(self) -> None:
        if self.proc.poll() is None:
            # The supervised processes run in sessions of their own: a failed assertion must
            # not leave a web server and workers behind.
            for pid in _descendants(self.proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _quell_connections(database: str) -> int:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        ).fetchone()[0]


def _client_ports(pid: int) -> set[int]:
    """Local ports of the TCP connections process `pid` holds (from /proc, as `ss -p` does)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _client_ports_in(database: str) -> set[int]:
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT client_port FROM pg_stat_activity WHERE datname = %s", (database,)
        ).fetchall()
    return {port for (port,) in rows}


def _load(port: int, requests: int = 500, clients: int = 20) -> list[int]:
    """`requests` requests from `clients` concurrent clients; every other one reads the database
    (an API call with a token that has to be looked up)."""

    def one(i: int) -> int:
        if i % 2:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/v1/incidents/",
                headers={"Authorization": f"Token {uuid.uuid4().hex}"},
            )
        else:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/admin/login/")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with ThreadPoolExecutor(max_workers=clients) as pool:
        return list(pool.map(one, range(requests)))


@pytest.mark.slow
def test_scripts_run_serves_within_its_connection_budget_and_ctrl_c_stops_every_process(
    scratch_database, tmp_path
):
    port = _dead_port()
    env = _run_env(
        tmp_path,
        scratch_database,
        port,
        QUELL_ADMIN_PASSWORD="admin-pw-from-env",
        QUELL_DEMO_PASSWORD="demo-pw-from-env",
        # The load below is about database connections: 250 bad-token requests from one address
        # would otherwise meet the anonymous throttle (tested in tests/accounts).
        QUELL_THROTTLE_ANON="100000/minute",
    )
    run = _Run(env)
    try:
        text = run.until("Press Ctrl-C to stop")
        assert "Press Ctrl-C to stop" in text, text[-3000:]
        assert f"database: PostgreSQL postgres@127.0.0.1:5432/{scratch_database} (environment)" in (
            text
        )
        assert "admin login: admin / admin-pw-from-env" in text
        assert "demo users: demo-viewer, demo-responder, demo-commander / demo-pw-from-env" in text
        assert not (tmp_path / "admin-password").exists()  # the operator chose that one
        assert _mode(tmp_path / "secrets.env") == 0o600
        budget = quell_run.connection_budget(env)
        limit = sum(budget.values())
        assert f"database connections: at most {limit} (web 8, worker 3, beat 1)" in text
        assert "mail:     printed in the worker's log (set EMAIL_URL to send it)" in text
        tree = _descendants(run.proc.pid) | {run.proc.pid}
        names = " ".join(_cmdline_of(pid) for pid in tree)
        assert "gunicorn" in names and "worker" in names and "beat" in names
        assert "runserver" not in names and "--reload" not in names
        # The supervisor set the admin up in its own process, and holds no connection afterwards:
        # the budget is the Procfile processes' alone.
        supervisor = next(pid for pid in tree if "quell_run.py" in _cmdline_of(pid))
        assert not _client_ports(supervisor) & _client_ports_in(scratch_database)
        # Links Quell writes (timeline, e-mail) point at this server, not the default port.
        web = next(pid for pid in tree if "gunicorn" in _cmdline_of(pid))
        web_env = Path(f"/proc/{web}/environ").read_bytes().split(b"\0")
        assert f"QUELL_BASE_URL=http://127.0.0.1:{port}".encode() in web_env

        # 500 requests from 20 clients: Quell's connections never exceed the budget.
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(_quell_connections(scratch_database))
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            statuses = _load(port)
        finally:
            done.set()
            sampler.join()
        assert statuses.count(200) == 250 and statuses.count(401) == 250, set(statuses)
        # PostgreSQL lists a backend for a few milliseconds after its client closed it, so a pool
        # replacing a connection can show one extra in a single 50 ms sample. Quell never holds
        # more than the budget: no two samples in a row are over it, and none by more than one.
        over = [i for i, n in enumerate(samples) if n > limit]
        assert samples and max(samples) <= limit + 1, (max(samples), limit)
        assert not any(i + 1 in over for i in over), (samples, limit)
        assert max(samples) >= 2  # the sampler did see the web's connections
        assert _quell_connections(scratch_database) <= limit

        os.killpg(run.proc.pid, signal.SIGINT)
        rest = run.rest()
    finally:
        run.kill_all()
    assert "SIGINT received" in rest and "all Quell processes stopped" in rest
    assert run.proc.returncode == 128 + signal.SIGINT
    time.sleep(0.5)
    assert not [pid for pid in tree if _alive(pid)]


@pytest.mark.slow
def test_a_failed_start_keeps_the_admin_password_and_the_next_start_says_where(
    scratch_database, tmp_path
):
    port = _dead_port()
    password_file = tmp_path / "admin-password"
    # The web server cannot start (bad setting): everything else is stopped with it.
    broken = _Run(
        _run_env(tmp_path, scratch_database, port, QUELL_WEB_TIMEOUT="never"), "--no-demo"
    )
    try:
        text = broken.rest(timeout=180)
    finally:
        broken.kill_all()
    assert broken.proc.returncode not in (0, None), text[-3000:]
    assert "sending SIGTERM to worker" in text and "all Quell processes stopped" in text
    shown = re.search(r"admin login: admin / (\S+)  \(also in (\S+), mode 0600\)", text)
    assert shown, text[-3000:]
    assert shown.group(2) == str(password_file)
    assert _mode(password_file) == 0o600
    assert password_file.read_text().strip() == shown.group(1)
    assert "Press Ctrl-C to stop" not in text

    again = _Run(_run_env(tmp_path, scratch_database, port), "--no-demo")
    try:
        text = again.until("Press Ctrl-C to stop")
        assert f"admin login: admin / the password in {password_file}" in text, text[-3000:]
        os.killpg(again.proc.pid, signal.SIGINT)
        again.rest()
    finally:
        again.kill_all()
    # The password in the file signs in.
    with psycopg.connect(f"{SERVER}/{scratch_database}") as conn:
        encoded = conn.execute("SELECT password FROM auth_user WHERE username = 'admin'").fetchone()
    from django.contrib.auth.hashers import PBKDF2PasswordHasher  # what scripts/run's settings use

    assert PBKDF2PasswordHasher().verify(password_file.read_text().strip(), encoded[0])


def _cmdline_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_scripts_test_passes_arguments_to_pytest_and_returns_its_exit_code():
    env = {**os.environ, "DATABASE_URL": f"{SERVER}/postgres", "REDIS_URL": f"{REDIS}/2"}
    # A selection that matches nothing: pytest exits 5, which .ci/run treats as a failure.
    result = subprocess.run(
        [str(ROOT / "scripts" / "test"), "tests/test_scripts.py", "-k", "no_such_test", "-q"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 5, result.stdout + result.stderr
    assert "database: PostgreSQL postgres@127.0.0.1:5432/postgres (environment)" in result.stdout
    assert "deselected" in result.stdout
