"""Constant SQL on the hot paths, bound and prepared on the server.

Django binds parameters on the client (libpq escapes them into the SQL text), so PostgreSQL
parses and plans every statement again: for the incident detail that planning was half of
the statement's time (0.3 of 0.6 ms, bench/api.py). A statement run here goes through a
psycopg server-binding cursor on Django's own connection (same transaction, same adapters,
Django's execute wrappers and query logging), and psycopg prepares it once it has run
`DATABASES["default"]["OPTIONS"]["prepare_threshold"]` times on that connection
(settings: DATABASE_PREPARE_THRESHOLD; unset there, nothing is prepared and the statements
simply run).

`fetch_instances` builds model instances from such a statement with `Model.from_db`, as the
ORM does, without the per-call work of a RawQuerySet (column introspection, init order).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.postgresql.base import ServerBindingCursor


@contextmanager
def server_bound_cursor(using: str = DEFAULT_DB_ALIAS) -> Iterator:
    """A Django cursor (error translation, execute wrappers, query log) whose parameters are
    bound on the server, so that repeated statements can be prepared."""
    connection = connections[using]
    connection.ensure_connection()
    cursor = ServerBindingCursor(connection.connection)
    wrapped = (
        connection.make_debug_cursor(cursor)
        if connection.queries_logged
        else connection.make_cursor(cursor)
    )
    try:
        yield wrapped
    finally:
        cursor.close()


@cache
def _concrete(model) -> tuple[list[str], list[str], list[tuple[int, list, object]]]:
    """Attribute names, column names, and the converters the ORM applies to each column as it
    reads it (a JSONField's decoding, for one), by position."""
    connection = connections[DEFAULT_DB_ALIAS]
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        column = field.get_col(model._meta.db_table)
        functions = connection.ops.get_db_converters(column) + column.get_db_converters(connection)
        if functions:
            converters.append((position, functions, column))
    return [f.attname for f in fields], [f.column for f in fields], converters


def model_columns(model, alias: str) -> str:
    """`alias.column, ...` for every concrete field of `model`, in the order `fetch_instances`
    reads them (a statement's select list starts with these)."""
    connection = connections[DEFAULT_DB_ALIAS]
    quote = connection.ops.quote_name
    return ", ".join(f"{alias}.{quote(column)}" for column in _concrete(model)[1])


def fetch_instances(
    model, sql: str, params: Sequence, *, extras: Sequence[str] = (), using=DEFAULT_DB_ALIAS
) -> list:
    """Run `sql`, whose select list is `model_columns(model, ...)` followed by one column per
    name in `extras`, and return the rows as instances of `model` (as loaded from the
    database) with the extras set as attributes."""
    attnames, _, converters = _concrete(model)
    width = len(attnames)
    connection = connections[using]
    with server_bound_cursor(using) as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    instances = []
    for row in rows:
        values = list(row[:width])
        for position, functions, column in converters:
            for convert in functions:
                values[position] = convert(values[position], column, connection)
        instance = model.from_db(using, attnames, values)
        for name, value in zip(extras, row[width:], strict=True):
            setattr(instance, name, value)
        instances.append(instance)
    return instances
