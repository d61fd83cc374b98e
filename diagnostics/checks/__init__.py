"""Diagnostic checks. Importing this package registers every check module's checks.

The imports below are in the order a responder reads results (connection first); the registry
keeps registration order.
"""
# ruff: noqa: I001  (order is meaningful, see above)

from . import connection  # noqa: F401
from . import activity  # noqa: F401
from . import locks  # noqa: F401
from . import performance  # noqa: F401
from . import maintenance  # noqa: F401
from . import errors  # noqa: F401
from . import replication  # noqa: F401
from . import storage  # noqa: F401
from . import changes  # noqa: F401
from .base import (
    Check,
    CheckOutcome,
    CheckStatus,
    Family,
    PreviousResult,
    register,
    registry,
    worst,
)

__all__ = [
    "Check",
    "CheckOutcome",
    "CheckStatus",
    "Family",
    "PreviousResult",
    "register",
    "registry",
    "worst",
]
