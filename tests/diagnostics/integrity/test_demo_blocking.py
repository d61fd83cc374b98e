"""quell_demo_blocking plants a real blocking chain on the demo shop under a non-superuser
application role, holds it, and lets go once the root blocker is terminated."""

from __future__ import annotations

import threading
import time
import uuid
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True)


def _server(dbname: str) -> psycopg.Connection:
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=dbname, autocommit=True
    )


@pytest.fixture
def demo_shop():
    """The demo shop in a database of its own, and a role name of this test's own (roles are
    server-wide); both dropped afterwards."""
    name = f"quell_demo_shop_{uuid.uuid4().hex[:8]}"
    role = f"{name}_app"
    call_command("quell_demo", shop_database=name, stdout=StringIO())
    yield name, role
    with _server(name) as conn:
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
            conn.execute(f'DROP OWNED BY "{role}"')  # its grants, so that it can be dropped
    with _server(settings.DATABASES["default"]["NAME"]) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _wait_for(conn, sql, params, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if conn.execute(sql, params).fetchone()[0]:
            return
        time.sleep(0.1)
    raise AssertionError(f"not seen in {timeout} s: {sql}")


def test_blocking_chain_runs_as_the_application_role_until_its_root_is_terminated(demo_shop):
    shop, role = demo_shop
    out = StringIO()
    command = threading.Thread(
        target=call_command,
        args=("quell_demo_blocking",),
        kwargs={"shop_database": shop, "app_role": role, "minutes": 2, "stdout": out},
    )
    command.start()
    with _server(shop) as watch:
        _wait_for(
            watch,
            "SELECT count(*) = 2 FROM pg_stat_activity WHERE datname = %s AND usename = %s"
            " AND wait_event_type = 'Lock'",
            (shop, role),
        )
        root = watch.execute(
            "SELECT pid, application_name, r.rolsuper FROM pg_stat_activity a"
            " JOIN pg_roles r ON r.rolname = a.usename"
            " WHERE datname = %s AND usename = %s AND state = 'idle in transaction'",
            (shop, role),
        ).fetchall()
        assert len(root) == 1
        pid, application, superuser = root[0]
        assert application == "shop-checkout" and superuser is False
        blocked_by = watch.execute(
            "SELECT array_agg(DISTINCT b) FROM pg_stat_activity a,"
            " unnest(pg_blocking_pids(a.pid)) b WHERE a.datname = %s AND a.usename = %s",
            (shop, role),
        ).fetchone()[0]
        assert pid in blocked_by
        assert (
            watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE %s"
                " AND state = 'active'",
                (shop, "SELECT pg_sleep%"),
            ).fetchone()[0]
            == 1
        )
        assert f"root blocker pid {pid}" in out.getvalue()

        # What Quell's remediation does: the command notices and lets everything go.
        watch.execute("SELECT pg_terminate_backend(%s)", (pid,))
        command.join(30)
        assert not command.is_alive()
        _wait_for(
            watch,
            "SELECT count(*) = 0 FROM pg_stat_activity WHERE datname = %s AND usename = %s",
            (shop, role),
        )
        # The queued updates went through once their blocker was gone.
        assert watch.execute(
            'SELECT "updatedAt" > now() - interval \'1 minute\' FROM "User" ORDER BY id LIMIT 1'
        ).fetchone()[0]
    assert f"The root blocker (pid {pid}) ended" in out.getvalue()
    assert "released" in out.getvalue()


def test_blocking_refuses_bad_arguments(demo_shop):
    shop, role = demo_shop
    with pytest.raises(CommandError, match="--minutes"):
        call_command("quell_demo_blocking", shop_database=shop, app_role=role, minutes=0)
    with pytest.raises(CommandError, match="--writers"):
        call_command("quell_demo_blocking", shop_database=shop, app_role=role, writers=50)
