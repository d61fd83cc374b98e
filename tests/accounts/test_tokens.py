"""API tokens: stored as digests, shown once, named, expiring, revocable; legacy keys migrate."""

import datetime
import hashlib
import importlib

import pytest
from django.apps import apps as global_apps
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from config.accounts import services
from config.accounts.models import ApiToken
from tests.factories import UserFactory

LIST = "/api/v1/incidents/"


def _client(secret):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    return client


@pytest.fixture
def reader(db):
    return UserFactory(username="reader", role="viewer")


def test_only_the_digest_is_stored(reader):
    token, secret = services.token_issue(user=reader, name="grafana")
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in {str(v) for v in row.values()}
    assert row["digest"] == hashlib.sha256(secret.encode()).hexdigest()
    assert secret.startswith(row["prefix"]) and len(row["prefix"]) == 8
    assert _client(secret).get(LIST).status_code == 200


def test_expired_and_revoked_tokens_are_refused(reader):
    past = timezone.now() - datetime.timedelta(minutes=1)
    _, expired = services.token_issue(user=reader, name="old", expires_at=past)
    response = _client(expired).get(LIST)
    assert response.status_code == 401
    assert response.json()["detail"] == "Token expired."

    future = timezone.now() + datetime.timedelta(days=1)
    token, secret = services.token_issue(user=reader, name="ci", expires_at=future)
    assert _client(secret).get(LIST).status_code == 200
    services.token_revoke(token=token)
    assert _client(secret).get(LIST).status_code == 401


def test_last_use_is_recorded_in_the_authenticating_statement(reader):
    token, secret = services.token_issue(user=reader, name="ci")
    assert token.last_used_at is None
    _client(secret).get(LIST)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    # Within a minute no further write happens (a busy client does not write per request).
    _client(secret).get(LIST)
    token.refresh_from_db()
    assert token.last_used_at == first


def test_legacy_plaintext_authtoken_keys_keep_working_after_the_migration(reader):
    """Databases that had DRF's authtoken table: each key becomes a digest (the same secret
    authenticates) and the plaintext table is dropped."""
    legacy_key = "0123456789abcdef0123456789abcdef01234567"
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY,"
            " created timestamptz NOT NULL, user_id integer NOT NULL UNIQUE)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, now() - interval '30 days', %s)",
            [legacy_key, reader.pk],
        )
    migration = importlib.import_module("config.accounts.migrations.0002_hash_authtoken_keys")

    class Editor:
        pass

    editor = Editor()
    editor.connection = connection
    migration.hash_legacy_tokens(global_apps, editor)

    assert "authtoken_token" not in connection.introspection.table_names()
    token = ApiToken.objects.get(user=reader)
    assert token.prefix == legacy_key[:8] and token.digest != legacy_key
    assert _client(legacy_key).get(LIST).status_code == 200


def test_admin_shows_the_secret_once_and_never_again(admin_user, reader, client):
    client.force_login(admin_user)
    response = client.post(
        "/admin/accounts/apitoken/add/", {"user": reader.pk, "name": "alertmanager"}
    )
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    secret = response.context["secret"]
    assert secret.encode() in response.content
    token = ApiToken.objects.get(user=reader, name="alertmanager")
    assert _client(secret).get(LIST).status_code == 200

    listing = client.get("/admin/accounts/apitoken/")
    change = client.get(f"/admin/accounts/apitoken/{token.pk}/change/")
    for page in (listing, change):
        assert page.status_code == 200
        assert secret.encode() not in page.content
        assert token.digest.encode() not in page.content
    assert token.prefix.encode() in listing.content and b"alertmanager" in listing.content

    client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [token.pk]},
    )
    assert _client(secret).get(LIST).status_code == 401
