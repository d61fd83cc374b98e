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
    """Drop database `name` on `server`, forcing out sessions."""
    import psycopg

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
