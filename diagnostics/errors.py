"""The error every diagnostics write raises, and the input checks shared by its services.

The kernel maps these to HTTP answers (config.kernel.api): DiagnosticsError is a 400 naming the
field at fault, TargetInUse too (with its own code).
"""

from __future__ import annotations

import math
from typing import Any

from incidents.services import IncidentError


class DiagnosticsError(IncidentError):
    """A request the rules refuse; `field` names the input at fault. The API answers 400."""


def finite_number(value: Any, *, field: str, what: str = "a number") -> float:
    """A user's number as a float: float() also takes "nan", "inf" and "1e400" (inf), which
    compare false with everything and slip past range checks, so those are refused too."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise DiagnosticsError(f"{field} must be a finite number of {what}.", field=field)
    return number


class TargetInUse(DiagnosticsError):
    code = "target_in_use"
