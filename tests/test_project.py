"""The project as a whole: production settings, migrations, the demo data, the admin account."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from diagnostics.models import IncidentTarget, TargetDatabase
from incidents.models import EventKind, Incident, ResponderRole

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import quell_run  # noqa: E402


def _production_env(**overrides) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "QUELL_")) and key != "PYTEST_CURRENT_TEST"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY="k9" + uuid.uuid4().hex + uuid.uuid4().hex,
        DJANGO_ALLOWED_HOSTS="quell.example.com",
        QUELL_FERNET_KEYS=Fernet.generate_key().decode(),
    )
    env.update(overrides)
    return {key: value for key, value in env.items() if value is not None}


def _manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_security_checks():
    result = _manage(
        "check", "--deploy", "--tag", "security", "--fail-level", "WARNING", env=_production_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_reports_no_issues_with_production_settings():
    # Every deploy check, the API schema's (drf-spectacular) included.
    result = _manage("check", "--deploy", "--fail-level", "WARNING", env=_production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = _production_env(DJANGO_SECRET_KEY=None)
    assert "DJANGO_SECRET_KEY" not in env
    result = _manage("check", env=env)
    assert result.returncode != 0
    assert "Set the DJANGO_SECRET_KEY environment variable" in result.stderr


REQUIRED_IN_PRODUCTION = ["DJANGO_SECRET_KEY", "DJANGO_ALLOWED_HOSTS", "QUELL_FERNET_KEYS"]


@pytest.mark.parametrize("name", REQUIRED_IN_PRODUCTION)
def test_production_settings_refuse_to_start_with_an_empty_required_variable(name):
    result = _manage("check", env=_production_env(**{name: ""}))
    assert result.returncode != 0
    assert f"Set the {name} environment variable (it is empty)" in result.stderr


@pytest.mark.parametrize("name", REQUIRED_IN_PRODUCTION)
def test_production_settings_refuse_to_start_with_a_required_variable_unset(name):
    result = _manage("check", env=_production_env(**{name: None}))
    assert result.returncode != 0
    assert f"Set the {name} environment variable" in result.stderr


def test_production_reads_the_mail_server_from_email_url():
    env = _production_env(EMAIL_URL="smtp+tls://quell%40example.com:p%40ss@smtp.example.com:587")
    show = (
        "from django.conf import settings as s; print(s.EMAIL_HOST, s.EMAIL_PORT, "
        "s.EMAIL_HOST_USER, s.EMAIL_HOST_PASSWORD, s.EMAIL_USE_TLS, s.EMAIL_USE_SSL)"
    )
    result = _manage("shell", "-c", show, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].split() == [
        "smtp.example.com",
        "587",
        "quell@example.com",
        "p@ss",
        "True",
        "False",
    ]


@pytest.mark.django_db
def test_migrations_are_complete():
    out = StringIO()
    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit as exc:  # --check exits 1 when a model change has no migration
        pytest.fail(f"models changed without a migration:\n{out.getvalue()} (exit {exc.code})")


# --- demo data -------------------------------------------------------------------------------


@pytest.fixture
def shop_database():
    name = f"quell_demo_shop_{uuid.uuid4().hex[:8]}"
    yield name
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _shop_counts(name: str) -> dict[str, int]:
    db = settings.DATABASES["default"]
    with psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=name) as conn:
        counts = {
            table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
            for table in ("User", "Profile", "Post", "Product", "Order", "OrderItem")
        }
        counts["admins"] = conn.execute(
            """SELECT count(*) FROM "User" WHERE role = 'ADMIN'"""
        ).fetchone()[0]
        counts["email_unique"] = conn.execute(
            """SELECT count(*) FROM pg_indexes
               WHERE tablename = 'User' AND indexname = 'User_email_key'
                 AND indexdef LIKE 'CREATE UNIQUE INDEX%'"""
        ).fetchone()[0]
        counts["foreign_keys"] = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'f'"
        ).fetchone()[0]
    return counts


@pytest.mark.django_db
def test_quell_demo_creates_the_shop_target_users_and_incident_and_is_idempotent(
    shop_database, monkeypatch
):
    monkeypatch.setenv("QUELL_DEMO_PASSWORD", "first-demo-password")
    first = StringIO()
    call_command("quell_demo", shop_database=shop_database, stdout=first)
    assert "password first-demo-password" in first.getvalue()

    monkeypatch.setenv("QUELL_DEMO_PASSWORD", "second-demo-password")
    second = StringIO()
    call_command("quell_demo", shop_database=shop_database, stdout=second)
    assert "second-demo-password" not in second.getvalue()
    assert "exists" in second.getvalue()

    counts = _shop_counts(shop_database)
    assert counts["User"] == 200 and counts["Profile"] == 190 and counts["Post"] == 400
    assert counts["Order"] == 300 and counts["OrderItem"] > counts["Order"]
    assert counts["admins"] == 3
    assert counts["email_unique"] == 1
    assert counts["foreign_keys"] == 5

    target = TargetDatabase.objects.get()
    assert target.name == "Demo shop"
    assert (target.database, target.port) == (
        shop_database,
        int(settings.DATABASES["default"]["PORT"]),
    )

    users = get_user_model().objects.filter(username__startswith="demo-").order_by("username")
    assert [(u.username, [g.name for g in u.groups.all()]) for u in users] == [
        ("demo-commander", ["commander"]),
        ("demo-responder", ["responder"]),
        ("demo-viewer", ["viewer"]),
    ]
    # The second run did not change the password it had printed the first time.
    assert all(u.check_password("first-demo-password") for u in users)

    incident = Incident.objects.get()
    assert (incident.severity, incident.kind) == ("SEV2", "performance")
    assert IncidentTarget.objects.filter(incident=incident, target=target).count() == 1
    current = {
        a.role: a.user.username
        for a in incident.assignments.filter(relieved_at__isnull=True).select_related("user")
    }
    assert current == {
        ResponderRole.INCIDENT_COMMANDER: "demo-commander",
        ResponderRole.TECHNICAL_LEAD: "demo-responder",
    }
    assert incident.timeline.filter(kind=EventKind.NOTE).count() == 2


@pytest.mark.django_db
def test_quell_demo_reset_passwords_sets_a_new_one(shop_database, monkeypatch):
    monkeypatch.setenv("QUELL_DEMO_PASSWORD", "first-demo-password")
    call_command("quell_demo", shop_database=shop_database, stdout=StringIO())
    monkeypatch.setenv("QUELL_DEMO_PASSWORD", "reset-demo-password")
    out = StringIO()
    call_command("quell_demo", shop_database=shop_database, reset_passwords=True, stdout=out)
    assert "password reset-demo-password" in out.getvalue()
    user = get_user_model().objects.get(username="demo-viewer")
    assert user.check_password("reset-demo-password")


# --- the admin account scripts/run creates ---------------------------------------------------


@pytest.mark.django_db
def test_admin_account_is_created_once_and_reset_only_when_asked(monkeypatch, tmp_path):
    password_file = tmp_path / "admin-password"
    monkeypatch.setenv("QUELL_ADMIN_PASSWORD", "from-the-environment")
    login = quell_run.ensure_admin(reset=False, password_file=password_file)
    assert login == "admin login: admin / from-the-environment  (QUELL_ADMIN_PASSWORD)"
    assert not password_file.exists()  # the operator chose it: not copied to disk
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff
    assert admin.check_password("from-the-environment")

    monkeypatch.setenv("QUELL_ADMIN_PASSWORD", "changed-meanwhile")
    login = quell_run.ensure_admin(reset=False, password_file=password_file)
    assert "password unchanged" in login and "--reset-admin-password" in login
    admin.refresh_from_db()
    assert admin.check_password("from-the-environment")

    monkeypatch.delenv("QUELL_ADMIN_PASSWORD")
    login = quell_run.ensure_admin(reset=True, password_file=password_file)
    generated = password_file.read_text().strip()
    assert len(generated) >= 12 and generated in login
    assert (password_file.stat().st_mode & 0o777) == 0o600
    admin.refresh_from_db()
    assert admin.check_password(generated)
    # Later starts point at the file while its password still signs in.
    login = quell_run.ensure_admin(reset=False, password_file=password_file)
    assert login == f"admin login: admin / the password in {password_file}"
    assert generated not in login
    admin.set_password("changed-by-hand")
    admin.save()
    assert "password unchanged" in quell_run.ensure_admin(reset=False, password_file=password_file)
    assert get_user_model().objects.filter(username="admin").count() == 1
