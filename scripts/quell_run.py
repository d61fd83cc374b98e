"""Set Quell up and run it: per-install secrets, migrations, static files, the admin account,
demo data, then the processes of the Procfile (web: gunicorn, worker and beat: Celery) under
honcho.

Started by scripts/run through scripts/quell_env.py (which has exported DATABASE_URL and
REDIS_URL). honcho prefixes each process's output with its name, stops every process on
Ctrl-C or SIGTERM, and stops the others when one of them exits.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import hashlib
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

from cryptography.fernet import Fernet
from honcho.environ import parse_procfile
from honcho.manager import Manager
from honcho.printer import Message

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
READY_TIMEOUT = 60
# The public SECRET_KEY development settings fell back to before installs had their own: target
# credentials stored since then were encrypted with a key derived from it, so it stays a
# decryption-only key until they are re-encrypted (manage.py quell_rotate_keys).
LEGACY_DEV_SECRET_KEY = "dev-only-insecure-key-change-me-3c1f1e9a7b"  # noqa: S105 (public)


def say(line: str = "") -> None:
    print(f"[quell] {line}" if line else "", flush=True)


class StepFailed(Exception):
    pass


def var_path(configured: str | None, default: str) -> Path:
    """The file the environment names, else var/<default>."""
    return Path(configured or ROOT / "var" / default)


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable and writable by its owner only (0600) from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


# --- per-install secrets ---------------------------------------------------------------------


def derive_legacy_fernet_key(secret_key: str) -> str:
    """The key development settings derived from SECRET_KEY (diagnostics.crypto.derive_dev_key)."""
    digest = hashlib.sha256(b"quell-fernet-dev:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            values[name.strip()] = value.strip()
    return values


def write_secrets(path: Path, values: dict[str, str]) -> None:
    lines = [
        "# Quell's per-install secrets, made by scripts/run. Keep this file private (0600) and",
        "# back it up: without QUELL_FERNET_KEYS stored target passwords cannot be decrypted.",
        *(f"{name}={value}" for name, value in values.items()),
    ]
    write_private(path, "\n".join(lines) + "\n")


def ensure_secrets(path: Path) -> dict[str, str]:
    """DJANGO_SECRET_KEY and QUELL_FERNET_KEYS from `path`, generated into it on first use.

    A new file's QUELL_FERNET_KEYS is a fresh key followed by the key earlier installs derived
    from SECRET_KEY (decryption only), so credentials stored before keep working until they are
    re-encrypted. Values set in the environment win over the file.
    """
    if path.exists():
        os.chmod(path, 0o600)  # a copy made by hand may have come with wider permissions
        values = read_env_file(path)
    else:
        values = {}
    missing = [n for n in ("DJANGO_SECRET_KEY", "QUELL_FERNET_KEYS") if not values.get(n)]
    if missing:
        legacy_source = os.environ.get("DJANGO_SECRET_KEY") or LEGACY_DEV_SECRET_KEY
        values.setdefault("DJANGO_SECRET_KEY", "")
        values.setdefault("QUELL_FERNET_KEYS", "")
        if not values["DJANGO_SECRET_KEY"]:
            values["DJANGO_SECRET_KEY"] = secrets.token_urlsafe(50)
        if not values["QUELL_FERNET_KEYS"]:
            values["QUELL_FERNET_KEYS"] = ",".join(
                [Fernet.generate_key().decode(), derive_legacy_fernet_key(legacy_source)]
            )
        write_secrets(path, values)
        say(f"generated {', '.join(missing)} into {display(path)} (mode 0600; keep it)")
    return values


def retire_legacy_keys(path: Path) -> None:
    """Re-encrypt stored credentials with the primary key, then drop the older keys from `path`.

    Only for keys that came from the secrets file; a failure keeps them (and Quell starts).
    """
    values = read_env_file(path)
    keys = [k for k in values.get("QUELL_FERNET_KEYS", "").split(",") if k]
    if len(keys) < 2 or os.environ.get("QUELL_FERNET_KEYS") != values["QUELL_FERNET_KEYS"]:
        return
    say("re-encrypting stored target credentials with this install's own key")
    try:
        manage("quell_rotate_keys")
    except StepFailed:
        say("the older keys stay in use for now (see above); Quell starts anyway")
        return
    values["QUELL_FERNET_KEYS"] = keys[0]
    write_secrets(path, values)
    os.environ["QUELL_FERNET_KEYS"] = keys[0]


def display(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(ROOT))
    return str(path)


# --- setup steps -----------------------------------------------------------------------------


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


def ensure_admin(*, reset: bool, password_file: Path) -> str:
    """Create the superuser `admin` once; returns the line that tells how to sign in.

    The password is QUELL_ADMIN_PASSWORD or a generated one. A generated password is written to
    `password_file` (0600) before the account gets it, so it is never lost, even when a later
    step fails. An existing admin keeps its password unless `reset` is asked for.
    """
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    user = user_model.objects.filter(username="admin").first()
    if user is not None and not reset:
        if password_file.exists() and user.check_password(password_file.read_text().strip()):
            return f"admin login: admin / the password in {display(password_file)}"
        return (
            "admin login: admin / (password unchanged; scripts/run --reset-admin-password sets "
            "a new one)"
        )
    given = os.environ.get("QUELL_ADMIN_PASSWORD")
    password = given or secrets.token_urlsafe(12)
    if given:
        with contextlib.suppress(FileNotFoundError):
            password_file.unlink()  # it would hold an older password
    else:
        write_private(password_file, password + "\n")
    if user is None:
        user_model.objects.create_superuser(
            username="admin", email=os.environ.get("QUELL_ADMIN_EMAIL", ""), password=password
        )
    else:
        user.set_password(password)
        user.is_active = user.is_staff = user.is_superuser = True
        user.save()
    if given:
        return f"admin login: admin / {password}  (QUELL_ADMIN_PASSWORD)"
    return f"admin login: admin / {password}  (also in {display(password_file)}, mode 0600)"


def setup_accounts(*, reset: bool, password_file: Path) -> tuple[str, str | None]:
    """ensure_admin(), and the demo users' password when quell_demo is about to create them.

    Returns (how to sign in as admin, demo password to create the demo users with). Runs in
    this process and closes its database connection afterwards.
    """
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.db import connections

    try:
        login = ensure_admin(reset=reset, password_file=password_file)
        demo_password = None
        if not get_user_model().objects.filter(username__startswith="demo-").exists():
            demo_password = os.environ.get("QUELL_DEMO_PASSWORD") or secrets.token_urlsafe(9)
        return login, demo_password
    finally:
        # The supervisor holds no connection while Quell runs. With a pool (the default),
        # close_all() only returns the connection to it, and the pool keeps it open: close that too.
        connections.close_all()
        for connection in connections.all(initialized_only=True):
            if getattr(connection, "pool", None) is not None:
                connection.close_pool()


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def connection_budget(env=os.environ) -> dict[str, int]:
    """The most connections to Quell's database each Procfile process may hold.

    web: one pool per gunicorn worker, as large as its thread count; worker: one connection in
    the main process and in each prefork child (DATABASE_POOL_MAX_SIZE=1); beat: one.
    """
    web = int(env.get("QUELL_WEB_WORKERS", "2")) * int(env.get("QUELL_WEB_THREADS", "4"))
    worker = int(env.get("QUELL_WORKER_CONCURRENCY", "2")) + 1
    return {"web": web, "worker": worker, "beat": 1}


# --- running the Procfile under honcho -------------------------------------------------------


def procfile_processes(path: Path = ROOT / "Procfile") -> dict[str, str]:
    return dict(parse_procfile(path.read_text()).processes)


class Supervisor:
    """The Procfile's processes under honcho's Manager, plus a banner once the web answers.

    honcho runs each command in a process group of its own, prefixes its output with its name,
    sends SIGTERM to every group on Ctrl-C/SIGTERM or when one process exits, and SIGKILL to
    what is left 5 s later.
    """

    def __init__(self, processes: dict[str, str], *, url: str, banner: list[str], env=None):
        self.manager = Manager()
        self.url = url
        self.banner = banner
        for name, command in processes.items():
            self.manager.add_process(name, command, env=env or dict(os.environ), cwd=str(ROOT))
        self._done = threading.Event()
        self.not_ready = False

    def say(self, line: str = "") -> None:
        message = Message(
            type="line", data=line + "\n", time=datetime.datetime.now(), name="quell", colour=None
        )
        self.manager.events.put(message)

    def _announce_when_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._done.is_set():
            if _answers(self.url):
                self.say()
                for line in self.banner:
                    self.say(line)
                self.say("Press Ctrl-C to stop.")
                self.say()
                return
            if time.monotonic() > deadline:
                self.say(f"the web server did not answer at {self.url} within {READY_TIMEOUT} s")
                self.not_ready = True
                self.manager.terminate()
                return
            self._done.wait(0.25)

    def run(self) -> int:
        def on_hangup(_signum, _frame):
            self.say("SIGHUP received")
            self.manager.returncode = 128 + signal.SIGHUP
            self.manager.terminate()

        # honcho handles SIGINT and SIGTERM; a closed terminal must stop everything too.
        signal.signal(signal.SIGHUP, on_hangup)
        watcher = threading.Thread(target=self._announce_when_ready, daemon=True)
        watcher.start()
        try:
            self.manager.loop()
        finally:
            self._done.set()
            watcher.join(timeout=5)
        code = self.manager.returncode
        if self.not_ready or code is None:
            code = 1
        elif code < 0:  # killed by a signal
            code = 128 - code
        elif code == 0:
            code = 1  # even a clean exit of one process ends the run, and that is not success
        if self.manager.returncode in (130, 129, 143):  # SIGINT, SIGHUP, SIGTERM received
            code = self.manager.returncode
        say(f"all Quell processes stopped (exit {code})")
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
    parser.add_argument(
        "--dev",
        action="store_true",
        help="development mode: the web server reloads when Python code changes",
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    port = int(os.environ.get("QUELL_PORT", "8000"))
    os.environ["QUELL_PORT"] = str(port)
    if args.dev:
        os.environ["QUELL_DEV"] = "1"
    url = f"http://127.0.0.1:{port}/"
    # Links Quell writes (timeline events, e-mails) point at the server started here, unless
    # the operator named a public address.
    os.environ.setdefault("QUELL_BASE_URL", url.rstrip("/"))
    # The Procfile's `python` is this virtualenv's.
    os.environ.update(PATH=os.pathsep.join([str(Path(PYTHON).parent), *os.get_exec_path()]))
    if not port_is_free(port):
        say(f"port {port} is in use on 127.0.0.1; stop what uses it or set QUELL_PORT=<port>")
        return 1

    secrets_file = var_path(os.environ.get("QUELL_SECRETS_FILE"), "secrets.env")
    for name, value in ensure_secrets(secrets_file).items():
        os.environ.setdefault(name, value)
    password_file = var_path(os.environ.get("QUELL_ADMIN_PASSWORD_FILE"), "admin-password")
    try:
        say("migrating the database")
        manage("migrate", "--noinput", "-v", "1")
        retire_legacy_keys(secrets_file)
        say("collecting static files into var/static")
        manage("collectstatic", "--noinput", "-v", "0")
        login, demo_password = setup_accounts(
            reset=args.reset_admin_password, password_file=password_file
        )
        say(login)  # now, before anything else can fail
        if args.no_demo:
            demo_password = None
        else:
            if demo_password:
                demo_login = (
                    f"demo users: demo-viewer, demo-responder, demo-commander / {demo_password}"
                )
                say(demo_login)
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

    web = f"gunicorn, {os.environ.get('QUELL_WEB_WORKERS', '2')} workers"
    web += f" x {os.environ.get('QUELL_WEB_THREADS', '4')} threads"
    budget = connection_budget()
    connections = ", ".join(f"{name} {n}" for name, n in budget.items())
    banner = [
        f"Quell is running at {url}  ({web}{', reloading on code changes' if args.dev else ''})",
        f"  admin:   {url}admin/",
        f"  API:     {url}api/v1/  (docs at {url}api/v1/docs/)",
        f"  status:  {url}status/",
        f"  {login}",
        f"  database: {os.environ.get('QUELL_DATABASE_DESCRIPTION', '(DATABASE_URL)')}",
        f"  broker:   {os.environ.get('QUELL_BROKER_DESCRIPTION', '(REDIS_URL)')}",
        f"  secrets:  {display(secrets_file)}",
        f"  database connections: at most {sum(budget.values())} ({connections})",
    ]
    if os.environ["DJANGO_SETTINGS_MODULE"] == "config.settings.dev" and not os.environ.get(
        "EMAIL_URL"
    ):
        # config/settings/dev.py prints mail when no server is named.
        banner.append("  mail:     printed in the worker's log (set EMAIL_URL to send it)")
    if demo_password:
        banner.insert(5, f"  {demo_login}")
    (ROOT / "var" / "run").mkdir(parents=True, exist_ok=True)
    return Supervisor(procfile_processes(), url=f"{url}admin/login/", banner=banner).run()


if __name__ == "__main__":
    sys.exit(main())
