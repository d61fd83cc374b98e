"""Plant a real blocking chain on the demo shop, as its application would cause one.

The shop's sessions run under a non-superuser application role (`quell_demo_shop_app`, created
here and by `quell_demo`), as a real application's do: Quell's remediation guardrail refuses to
signal superuser sessions without `force`, so sessions of Quell's own (superuser) demo login
would lock the Incident Commander out of the demo. docs/diagnostics.md shows how to set up such
a role on a real database.

The chain: a checkout session opens a transaction, locks a row of "User" and goes idle in
transaction (the root blocker); checkout updates of that row queue behind it; a report query
runs long beside them. It holds until --minutes pass, Ctrl-C, or Quell terminates the root
blocker (the queued updates then go through), and ends every session it opened.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time

import psycopg
from django.core.management.base import BaseCommand, CommandError
from psycopg import sql

from .quell_demo import SHOP_DATABASE, server_conninfo

APP_ROLE = "quell_demo_shop_app"


def ensure_app_role(shop_database: str, role: str = APP_ROLE) -> str:
    """Create (or update) the shop's application role: LOGIN, not superuser, read-write on the
    shop's tables. A new random password each time, returned (it is never stored)."""
    password = secrets.token_urlsafe(18)
    with psycopg.connect(**server_conninfo(shop_database), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL("{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                sql.SQL(verb), sql.Identifier(role), sql.Literal(password)
            )
        )
        for statement in (
            "GRANT CONNECT ON DATABASE {db} TO {role}",
            "GRANT USAGE ON SCHEMA public TO {role}",
            "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
            "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        ):
            conn.execute(
                sql.SQL(statement).format(
                    db=sql.Identifier(shop_database), role=sql.Identifier(role)
                )
            )
    return password


class Command(BaseCommand):
    help = (
        "Plant a blocking chain on the demo shop under its application role: a session idle "
        'in transaction holding a row lock on "User", updates queued behind it and a long '
        "query. Holds until --minutes pass, Ctrl-C, or the root blocker is terminated."
    )

    def add_arguments(self, parser):
        parser.add_argument("--shop-database", default=SHOP_DATABASE)
        parser.add_argument("--minutes", type=float, default=15.0, help="how long to hold")
        parser.add_argument("--writers", type=int, default=2, help="updates queued (1-10)")
        parser.add_argument("--app-role", default=APP_ROLE, help="the application role")

    def handle(self, *args, shop_database, minutes, writers, app_role, **options):
        if not 0 < minutes <= 24 * 60:
            raise CommandError("--minutes must be above 0 and at most 1440.")
        if not 1 <= writers <= 10:
            raise CommandError("--writers must be between 1 and 10.")
        try:
            password = ensure_app_role(shop_database, app_role)
        except psycopg.Error as exc:
            raise CommandError(
                f"Could not set up the role {app_role} on {shop_database} (run quell_demo "
                f"first): {exc}"
            ) from exc
        as_app = {**server_conninfo(shop_database), "user": app_role, "password": password}
        seconds = minutes * 60
        sessions: list[psycopg.Connection] = []
        threads: list[threading.Thread] = []

        def connect(application_name: str) -> psycopg.Connection:
            conn = psycopg.connect(**as_app, application_name=application_name, autocommit=True)
            sessions.append(conn)
            return conn

        try:
            root = connect("shop-checkout")
            root.execute("BEGIN")
            row_id = root.execute(
                'SELECT id FROM "User" ORDER BY id LIMIT 1 FOR UPDATE'
            ).fetchone()[0]
            for n in range(1, writers + 1):
                threads.append(
                    threading.Thread(
                        target=self._quietly,
                        args=(
                            connect(f"shop-checkout-{n}"),
                            'UPDATE "User" SET "updatedAt" = now() WHERE id = %s',
                            (row_id,),
                        ),
                        daemon=True,
                    )
                )
            threads.append(
                threading.Thread(
                    target=self._quietly,
                    args=(connect("shop-reports"), "SELECT pg_sleep(%s)", (seconds,)),
                    daemon=True,
                )
            )
            for thread in threads:
                thread.start()
            self.stdout.write(
                f"Blocking chain on {shop_database} as {app_role}:\n"
                f"  root blocker pid {root.info.backend_pid} (shop-checkout): idle in "
                f'transaction, holds row {row_id} of "User"\n'
                f"  {writers} update(s) of that row queued behind it, and a long report query\n"
                f"Holding for {minutes:g} min (Ctrl-C ends it). Declare an incident on "
                "'Demo shop' and terminate the root blocker from its finding.",
                self.style.SUCCESS,
            )
            self._hold(shop_database, root.info.backend_pid, seconds)
        except psycopg.Error as exc:
            raise CommandError(f"Could not plant the blocking chain: {exc}") from exc
        except KeyboardInterrupt:
            self.stdout.write("Interrupted.")
        finally:
            self._release(sessions, threads)
        self.stdout.write("Blocking chain released; every session it opened is closed.")

    def _hold(self, shop_database: str, root_pid: int, seconds: float) -> None:
        """Until the time is up or the root blocker's session is gone (terminated). Watched
        from a session of its own: a statement in the root's transaction would reset its
        idle time."""
        deadline = time.monotonic() + seconds
        with psycopg.connect(**server_conninfo(shop_database), autocommit=True) as watch:
            while time.monotonic() < deadline:
                time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
                alive = watch.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = %s", (root_pid,)
                ).fetchone()
                if not alive:
                    self.stdout.write(f"The root blocker (pid {root_pid}) ended: terminated.")
                    return

    @staticmethod
    def _release(sessions: list[psycopg.Connection], threads: list[threading.Thread]) -> None:
        """End the root's transaction first (the queued updates go through), cancel what
        still runs, then close everything."""
        if sessions:
            with contextlib.suppress(psycopg.Error):
                sessions[0].close()
        for conn in sessions[1:]:
            with contextlib.suppress(psycopg.Error):
                conn.cancel_safe(timeout=5)
        for thread in threads:
            thread.join(timeout=10)
        for conn in sessions[1:]:
            with contextlib.suppress(psycopg.Error):
                conn.close()

    @staticmethod
    def _quietly(conn: psycopg.Connection, statement: str, params: tuple) -> None:
        """Run a statement that waits (on the lock, or sleeping) until released or cancelled."""
        with contextlib.suppress(psycopg.Error):
            conn.execute(statement, params)
