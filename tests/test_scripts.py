"""scripts/: the database/broker choice (scripts/quell_env.py) and the process supervisor
(scripts/quell_run.py). Real servers throughout: the machine's PostgreSQL and Redis, and the
embedded ones the scripts start when nothing answers."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis

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


# --- supervision -----------------------------------------------------------------------------


def _sleeper(pid_file: Path) -> list[str]:
    code = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)"
    return [sys.executable, "-c", code, str(pid_file)]


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


@pytest.mark.parametrize(
    ("ending", "code", "message"),
    [
        ("sys.exit(4)", 4, "crasher exited with code 4; stopping the others"),
        ("os.kill(os.getpid(), 9)", 128 + 9, "crasher was killed by SIGKILL; stopping the others"),
    ],
)
def test_supervisor_stops_the_others_when_one_child_dies(tmp_path, capsys, ending, code, message):
    pid_file = tmp_path / "sleeper.pid"
    children = [
        quell_run.Child("sleeper", _sleeper(pid_file)),
        quell_run.Child(
            "crasher",
            [sys.executable, "-c", f"import os, sys, time; time.sleep(1); {ending}"],
        ),
    ]
    url = f"http://127.0.0.1:{_dead_port()}/"
    try:
        returned = quell_run.supervise(children, url=url, banner=["ready"])
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert returned == code
    assert not _alive(int(_wait_for(pid_file)))
    out = capsys.readouterr().out
    assert message in out
    assert "all Quell processes stopped" in out


HARNESS = """
import sys
sys.path.insert(0, sys.argv[1])
import quell_run as q
web = q.Child("web", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", sys.argv[2]])
a = q.Child("a", [sys.executable, "-c", sys.argv[4], sys.argv[3] + "/a.pid"])
b = q.Child("b", [sys.executable, "-c", sys.argv[4], sys.argv[3] + "/b.pid"])
sys.exit(q.supervise([web, a, b], url=f"http://127.0.0.1:{sys.argv[2]}/", banner=["READY"]))
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_supervisor_stops_every_child_on_a_signal(tmp_path, signum):
    port = _dead_port()
    sleeper = _sleeper(Path("x"))[2]
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
    assert proc.returncode == 128 + signum
    assert f"{signal.Signals(signum).name} received" in out
    assert "all Quell processes stopped" in out
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(OSError):
        import socket

        socket.create_connection(("127.0.0.1", port), timeout=1)


# --- scripts/run, for real -------------------------------------------------------------------


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


@pytest.mark.slow
def test_scripts_run_serves_quell_and_ctrl_c_stops_every_process(scratch_database):
    import urllib.request

    port = _dead_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"{SERVER}/{scratch_database}",
        "REDIS_URL": f"{REDIS}/2",
        "QUELL_PORT": str(port),
        "QUELL_ADMIN_PASSWORD": "admin-pw-from-env",
        "QUELL_DEMO_PASSWORD": "demo-pw-from-env",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a terminal of its own: Ctrl-C goes to its process group
    )
    output: list[str] = []
    try:
        deadline = time.monotonic() + 150
        for line in proc.stdout:
            output.append(line)
            if "Press Ctrl-C to stop" in line or time.monotonic() > deadline:
                break
        text = "".join(output)
        assert "Press Ctrl-C to stop" in text, text[-3000:]
        assert f"database: PostgreSQL postgres@127.0.0.1:5432/{scratch_database} (environment)" in (
            text
        )
        assert "admin login: admin / admin-pw-from-env" in text
        assert "demo users: demo-viewer, demo-responder, demo-commander / demo-pw-from-env" in text
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=10) as page:
            assert page.status == 200
        tree = _descendants(proc.pid) | {proc.pid}
        names = " ".join(_cmdline_of(pid) for pid in tree)
        assert "runserver" in names and "worker" in names and "beat" in names
        # Links Quell writes (timeline, e-mail) point at this server, not the default port.
        web = next(pid for pid in tree if "runserver" in _cmdline_of(pid))
        web_env = Path(f"/proc/{web}/environ").read_bytes().split(b"\0")
        assert f"QUELL_BASE_URL=http://127.0.0.1:{port}".encode() in web_env

        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            # The supervised children run in process groups of their own: a failed assertion
            # above must not leave a web server and workers behind.
            for pid in _descendants(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert "SIGINT received" in rest and "all Quell processes stopped" in rest
    assert proc.returncode == 128 + signal.SIGINT
    time.sleep(0.5)
    assert not [pid for pid in tree if _alive(pid)]


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
