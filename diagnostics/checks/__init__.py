"""Diagnostic checks. Importing this package registers every check module's checks."""

from .base import Check, CheckOutcome, CheckStatus, Family, register, registry, worst

__all__ = ["Check", "CheckOutcome", "CheckStatus", "Family", "register", "registry", "worst"]
