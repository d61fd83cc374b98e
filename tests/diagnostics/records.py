"""Factories for diagnostics rows (targets through the service, so secrets are encrypted)."""

from __future__ import annotations

from tests.factories import TargetDatabaseFactory


def make_target(**overrides):
    """A target registered through diagnostics.services.target_create (TargetDatabaseFactory)."""
    return TargetDatabaseFactory(**overrides)
