"""Target credentials: encrypted at rest, rotated with MultiFernet, never shown."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.db import connection

from diagnostics import crypto, services
from diagnostics.models import TargetDatabase
from tests.diagnostics.records import make_target

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-Pa55word-zq"


def _raw_column(target_id, column):
    with connection.cursor() as cur:
        cur.execute(f"SELECT {column} FROM diagnostics_targetdatabase WHERE id = %s", [target_id])
        return cur.fetchone()[0]


def test_password_is_stored_encrypted_and_decrypts_into_the_spec():
    target = make_target(password=SECRET)
    stored = _raw_column(target.pk, "password_encrypted")
    assert stored and SECRET not in stored
    spec = TargetDatabase.objects.get(pk=target.pk).to_connection_spec()
    assert spec.password == SECRET
    assert spec.host == "127.0.0.1" and spec.dbname == "postgres" and spec.user == "postgres"


def test_repr_and_str_of_target_and_spec_hide_the_password():
    target = make_target(password=SECRET)
    assert SECRET not in repr(target) and SECRET not in str(target)
    spec = target.to_connection_spec()
    assert SECRET not in repr(spec) and SECRET not in str(spec)


def test_dsn_is_encrypted_and_fills_the_visible_fields():
    dsn = f"postgresql://app:{SECRET}@db.example.com:6543/shop?sslmode=require"
    target = services.target_create(name="shop", dsn=dsn)
    assert SECRET not in _raw_column(target.pk, "dsn_encrypted")
    assert (target.host, target.port, target.database, target.user) == (
        "db.example.com",
        6543,
        "shop",
        "app",
    )
    assert target.to_connection_spec().dsn == dsn


def test_invalid_dsn_error_does_not_echo_the_dsn():
    with pytest.raises(services.DiagnosticsError) as exc:
        services.target_create(name="bad", dsn=f"host=x password={SECRET} port=notaport ='")
    assert SECRET not in str(exc.value)
    assert exc.value.field == "dsn"


def test_rotation_re_encrypts_with_the_newest_key_and_old_key_can_go(settings):
    old_key = settings.QUELL_FERNET_KEYS[0]
    target = make_target(password=SECRET)
    before = _raw_column(target.pk, "password_encrypted")
    new_key = Fernet.generate_key().decode()
    settings.QUELL_FERNET_KEYS = [new_key, old_key]
    call_command("quell_rotate_keys")
    after = _raw_column(target.pk, "password_encrypted")
    assert after != before
    settings.QUELL_FERNET_KEYS = [new_key]  # the old key is retired
    assert TargetDatabase.objects.get(pk=target.pk).to_connection_spec().password == SECRET


def test_removed_key_gives_a_clear_error_without_the_secret(settings):
    target = make_target(password=SECRET)
    settings.QUELL_FERNET_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.SecretError) as exc:
        TargetDatabase.objects.get(pk=target.pk).to_connection_spec()
    assert "QUELL_FERNET_KEYS" in str(exc.value)
    assert SECRET not in str(exc.value)


def test_missing_keys_are_reported_by_the_system_check(settings):
    settings.QUELL_FERNET_KEYS = []
    errors = crypto.check_fernet_keys()
    assert [e.id for e in errors] == ["diagnostics.E001"]
    settings.QUELL_FERNET_KEYS = ["not-a-key"]
    assert [e.id for e in crypto.check_fernet_keys()] == ["diagnostics.E001"]


def test_dev_key_is_derived_from_secret_key(settings):
    assert [crypto.derive_dev_key(settings.SECRET_KEY)] == settings.QUELL_FERNET_KEYS


def test_secret_never_logged_by_create_update_or_test_connection(caplog):
    caplog.set_level(logging.DEBUG)
    target = make_target(password=SECRET, port=1)  # closed port: an error path
    services.target_update(target_id=target.pk, password=SECRET + "2")
    result = services.target_test_connection(target_id=target.pk)
    assert result["reachable"] is False
    assert SECRET not in result["error"]
    assert SECRET not in caplog.text


def test_update_keeps_password_when_none_and_clears_it_when_empty():
    target = make_target(password=SECRET)
    services.target_update(target_id=target.pk, port=5433)
    assert TargetDatabase.objects.get(pk=target.pk).to_connection_spec().password == SECRET
    services.target_update(target_id=target.pk, password="")
    assert not TargetDatabase.objects.get(pk=target.pk).has_password


def test_target_create_refuses_duplicates_and_missing_fields_with_field_names():
    make_target(name="orders")
    with pytest.raises(services.DiagnosticsError) as exc:
        make_target(name="Orders")
    assert exc.value.field == "name"
    with pytest.raises(services.DiagnosticsError) as exc:
        services.target_create(name="nohost", database="x", user="y")
    assert exc.value.field == "host"
    with pytest.raises(services.DiagnosticsError) as exc:
        make_target(port=70000)
    assert exc.value.field == "port"
    with pytest.raises(services.DiagnosticsError) as exc:
        make_target(environment="prod")
    assert exc.value.field == "environment"


def test_tags_are_normalised():
    target = make_target(tags=["EU", " eu ", "payments", ""])
    assert target.tags == ["eu", "payments"]


def test_password_target_runs_and_failures_never_leak_the_password(pg15, caplog, settings):
    """A real password-authenticated role: the right password works, a wrong one fails, and
    neither appears in results, run errors, the API-facing probe or the logs."""
    from tests.diagnostics.clusters import PASSWORD, PASSWORD_ROLE

    caplog.set_level(logging.DEBUG)
    good = make_target(
        name="pw-good",
        host=pg15.host,
        port=pg15.port,
        database="quell_target",
        user=PASSWORD_ROLE,
        password=PASSWORD,
        sslmode="disable",
    )
    wrong_password = PASSWORD + "-wrong-" + SECRET
    bad = make_target(
        name="pw-bad",
        host=pg15.host,
        port=pg15.port,
        database="quell_target",
        user=PASSWORD_ROLE,
        password=wrong_password,
        sslmode="disable",
    )
    assert services.target_test_connection(target_id=good.pk)["reachable"] is True
    probe = services.target_test_connection(target_id=bad.pk)
    assert probe["reachable"] is False and "password" in probe["error"].lower()
    for target in (good, bad):
        run = services.diagnostic_run_start(target_id=target.pk, suite={"keys": ["connection"]})
        services.diagnostic_run_execute(run_id=run.pk)
        run.refresh_from_db()
        texts = [run.error, *[r.summary + r.error + str(r.findings) for r in run.results.all()]]
        assert all(PASSWORD not in t and wrong_password not in t for t in texts)
    assert bad.runs.get().results.get().status == "critical"
    assert good.runs.get().results.get().status in ("ok", "warning")
    assert PASSWORD not in caplog.text and wrong_password not in caplog.text
    assert SECRET not in str(probe)
