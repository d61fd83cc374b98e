"""Factories for diagnostics rows (targets through the service, so secrets are encrypted)."""

from __future__ import annotations

import itertools

from diagnostics import services

_seq = itertools.count(1)


def make_target(**overrides):
    """A target registered through diagnostics.services.target_create."""
    n = next(_seq)
    values = {
        "name": f"target-{n}",
        "environment": "production",
        "host": "127.0.0.1",
        "port": 5432,
        "database": "postgres",
        "user": "postgres",
        "password": "",
    }
    values.update(overrides)
    return services.target_create(**values)
