"""Set Quell up and run it: migrate, static files, admin account, demo data, then the web
server, a Celery worker and Celery beat as one process tree.

Started by scripts/run through scripts/quell_env.py (which has exported DATABASE_URL and
REDIS_URL). Ctrl-C or SIGTERM stops every child; when one child dies the others are stopped
and the exit code says so.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
STOP_GRACE = 10  # seconds each child gets to shut down cleanly before it is killed
READY_TIMEOUT = 60

_print_lock = threading.Lock()


def say(line: str = "") -> None:
    with _print_lock:
        print(f"[quell] {line}" if line else "", flush=True)


class StepFailed(Exception):
    pass


def manage(*args: str, extra_env: dict[str, str] | None = None) -> None:
    """Run a manage.py command in the foreground; its output goes straight to the terminal."""
    result = subprocess.run(
        [PYTHON, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env={**os.environ, **(extra_env or {})},
        check=False,
    )
    if result.returncode != 0:
        raise StepFailed(f"manage.py {' '.join(args)} failed (exit {result.returncode})")


def ensure_admin(*, reset: bool) -> str | None:
    """Create the superuser `admin` once; returns the password when it was set now.

    The password is QUELL_ADMIN_PASSWORD or a generated one. An existing admin keeps its
    password unless `reset` is asked for.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user = user_model.objects.filter(username="admin").first()
    if user is not None and not reset:
        return None
    password = os.environ.get("QUELL_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
    if user is None:
        user_model.objects.create_superuser(
            username="admin", email=os.environ.get("QUELL_ADMIN_EMAIL", ""), password=password
        )
    else:
        user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        user.save()
    return password


def setup_accounts(*, reset: bool) -> tuple[str | None, str | None]:
    """ensure_admin(), and the demo users' password when quell_demo is about to create them.

    Returns (admin password set now, demo password to create the demo users with). Runs in
    this process and closes its database connection afterwards.
    """
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    try:
        admin_password = ensure_admin(reset=reset)
        demo_password = None
        if not get_user_model().objects.filter(username__startswith="demo-").exists():
            demo_password = os.environ.get("QUELL_DEMO_PASSWORD") or secrets.token_urlsafe(9)
        return admin_password, demo_password
    finally:
        connections.close_all()  # the supervisor holds no connection while Quell runs


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class Child:
    """One supervised process in its own process group, its output prefixed with its name."""

    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.argv = argv
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            # Its own group: signals reach it (and its own children: runserver's reloader,
            # the worker's pool) only when the supervisor sends them, in order.
            start_new_session=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        label = f"{self.name:<6} | "
        for raw in iter(self.process.stdout.readline, b""):
            with _print_lock:
                sys.stdout.write(label + raw.decode(errors="replace").rstrip("\n") + "\n")
                sys.stdout.flush()

    def poll(self) -> int | None:
        return self.process.poll() if self.process else 0

    def signal_group(self, signum: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signum)

    def group_alive(self) -> bool:
        """True while any process of the child's group is left (its own children included)."""
        if self.process is None:
            return False
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def stop_all(children: list[Child]) -> None:
    """SIGTERM every group, wait for them, SIGKILL what is left after STOP_GRACE seconds."""
    for child in children:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline:
        for child in children:
            child.poll()  # reap
        if not any(child.group_alive() for child in children):
            return
        time.sleep(0.1)
    for child in children:
        if child.group_alive():
            say(f"{child.name} did not stop within {STOP_GRACE} s; killing it")
            child.signal_group(signal.SIGKILL)
    for child in children:
        if child.process is not None:
            child.process.wait()


class Stop(Exception):
    def __init__(self, signum: int):
        self.signum = signum


def supervise(children: list[Child], *, url: str, banner: list[str]) -> int:
    """Run the children until a signal or until one of them exits; then stop them all."""

    def on_signal(signum, _frame):
        raise Stop(signum)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    code = 0
    try:
        for child in children:
            child.start()
        ready = False
        started_at = time.monotonic()
        while True:
            for child in children:
                status = child.poll()
                if status is not None:
                    if status < 0:
                        how = f"was killed by {signal.Signals(-status).name}"
                        code = 128 - status
                    else:
                        how = f"exited with code {status}"
                        code = status or 1  # even a clean exit of one child ends the run
                    say(f"{child.name} {how}; stopping the others")
                    return code
            if not ready:
                ready = _answers(url)
                if ready:
                    say()
                    for line in banner:
                        say(line)
                    say("Press Ctrl-C to stop.")
                    say()
                elif time.monotonic() - started_at > READY_TIMEOUT:
                    say(f"the web server did not answer at {url} within {READY_TIMEOUT} s")
                    return 1
            time.sleep(0.25 if not ready else 0.5)
    except Stop as stop:
        name = signal.Signals(stop.signum).name
        say(f"{name} received: stopping web server, worker and beat")
        code = 128 + stop.signum
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut cleanup short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(children)
        say("all Quell processes stopped")
    return code


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Set up and run Quell (use scripts/run).")
    parser.add_argument(
        "--reset-admin-password",
        action="store_true",
        help="set the admin password again (QUELL_ADMIN_PASSWORD or a new generated one)",
    )
    parser.add_argument("--no-demo", action="store_true", help="skip the demo data")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    port = int(os.environ.get("QUELL_PORT", "8000"))
    url = f"http://127.0.0.1:{port}/"
    # Links Quell writes (timeline events, e-mails) point at the server started here, unless
    # the operator named a public address.
    os.environ.setdefault("QUELL_BASE_URL", url.rstrip("/"))
    if not port_is_free(port):
        say(f"port {port} is in use on 127.0.0.1; stop what uses it or set QUELL_PORT=<port>")
        return 1

    try:
        say("migrating the database")
        manage("migrate", "--noinput", "-v", "1")
        say("collecting static files into var/static")
        manage("collectstatic", "--noinput", "-v", "0")
        password, demo_password = setup_accounts(reset=args.reset_admin_password)
        if args.no_demo:
            demo_password = None
        else:
            say("loading demo data (manage.py quell_demo)")
            # Only quell_demo gets the password: the long-running processes need not see it.
            manage(
                "quell_demo",
                extra_env={"QUELL_DEMO_PASSWORD": demo_password} if demo_password else None,
            )
    except StepFailed as exc:
        say(f"cannot start: {exc}")
        return 1
    except KeyboardInterrupt:
        say("interrupted during setup")
        return 130

    if password:
        login = f"admin login: admin / {password}  (shown once; keep it)"
    else:
        login = (
            "admin login: admin / (password unchanged; scripts/run --reset-admin-password sets "
            "a new one)"
        )
    banner = [
        f"Quell is running at {url}",
        f"  admin:   {url}admin/",
        f"  API:     {url}api/v1/  (docs at {url}api/v1/docs/)",
        f"  status:  {url}status/",
        f"  {login}",
        f"  database: {os.environ.get('QUELL_DATABASE_DESCRIPTION', '(DATABASE_URL)')}",
        f"  broker:   {os.environ.get('QUELL_BROKER_DESCRIPTION', '(REDIS_URL)')}",
    ]
    if demo_password:
        banner.insert(
            5, f"  demo users: demo-viewer, demo-responder, demo-commander / {demo_password}"
        )
    celery = [PYTHON, "-m", "celery", "-A", "config"]
    concurrency = os.environ.get("QUELL_WORKER_CONCURRENCY", "2")
    run_dir = ROOT / "var" / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    children = [
        Child("web", [PYTHON, "manage.py", "runserver", f"127.0.0.1:{port}"]),
        Child(
            "worker",
            [*celery, "worker", "-l", "INFO", "--concurrency", concurrency, "-n", "quell@%h"],
        ),
        Child(
            "beat",
            [
                *celery,
                "beat",
                "-l",
                "INFO",
                "--scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
                f"--pidfile={run_dir / 'celerybeat.pid'}",
            ],
        ),
    ]
    return supervise(children, url=f"{url}admin/login/", banner=banner)


if __name__ == "__main__":
    sys.exit(main())
