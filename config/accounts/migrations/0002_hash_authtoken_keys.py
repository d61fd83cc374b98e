"""Move DRF authtoken keys (stored in clear) into ApiToken as SHA-256 digests, then drop the
plaintext table. Each client keeps its secret: the same `Authorization: Token <key>` works,
until the token is rotated (`manage.py quell_token <user> --rotate`)."""

import hashlib

from django.db import migrations

LEGACY_TABLE = "authtoken_token"


def hash_legacy_tokens(apps, schema_editor):
    connection = schema_editor.connection
    if LEGACY_TABLE not in connection.introspection.table_names():
        return  # a database that never had DRF's authtoken app
    ApiToken = apps.get_model("accounts", "ApiToken")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT key, user_id, created FROM {LEGACY_TABLE}")
        rows = cursor.fetchall()
    for key, user_id, created in rows:
        ApiToken.objects.get_or_create(
            digest=hashlib.sha256(key.encode()).hexdigest(),
            defaults={"user_id": user_id, "name": "api", "prefix": key[:8], "created_at": created},
        )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {LEGACY_TABLE}")
        # The app is gone from INSTALLED_APPS; forget its migrations so that re-adding it
        # would recreate its table instead of assuming one.
        cursor.execute("DELETE FROM django_migrations WHERE app = 'authtoken'")


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_api_tokens")]

    operations = [migrations.RunPython(hash_legacy_tokens, migrations.RunPython.noop)]
