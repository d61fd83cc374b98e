"""Database set-up the benchmarks share: each loads its own throwaway database on a server."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432/postgres"


def with_dbname(url: str, name: str) -> str:
    """The same server URL, naming another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


def recreate_database(server: str, name: str) -> None:
    """Drop (forcing out sessions) and create database `name` on `server`."""
    import psycopg

    with psycopg.connect(with_dbname(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(server: str, name: str) -> None:
    """Drop database `name` on `server`, forcing out sessions; Django's own connections (when a
    benchmark set Django up) are closed first, so its pool does not see them killed."""
    import sys

    import psycopg

    if "django.conf" in sys.modules:
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()

    with psycopg.connect(with_dbname(server, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def use_throwaway_secrets() -> None:
    """Give Django a per-run secret key and Fernet key when none is configured.

    A benchmark runs on a fresh clone, before scripts/run has generated var/secrets.env; the
    keys only sign and encrypt the benchmark's own throwaway rows, so fresh random ones do.
    """
    import base64
    import os
    import secrets

    os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
    os.environ.setdefault(
        "QUELL_FERNET_KEYS", base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    )


def django_on_scratch_database(name: str, **environment: str) -> tuple[str, str]:
    """Recreate database `name` on DATABASE_URL's server (or the local one) and set Django up
    against it, configured as it serves requests: DEBUG off, persistent connections (the dev
    settings with DJANGO_DEBUG=false), throwaway keys, and `environment` on top.

    Returns (the server's URL, the scratch database's URL).
    """
    import os
    from urllib.parse import urlsplit

    admin_url = os.environ.get("DATABASE_URL", DEFAULT_SERVER)
    bench_url = with_dbname(admin_url, name)
    where = urlsplit(bench_url)
    print(f"benchmark database: {name} on {where.hostname}:{where.port or 5432}")
    recreate_database(admin_url, name)
    os.environ["DATABASE_URL"] = bench_url
    os.environ["DJANGO_DEBUG"] = "false"
    os.environ.update(environment)
    use_throwaway_secrets()
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.dev"
    os.environ.setdefault("DATABASE_CONN_MAX_AGE", "600")
    import django

    django.setup()
    return admin_url, bench_url
