"""Small helpers the checks share: JSON-safe findings, coverage gaps, version parsing."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import uuid
from typing import Any

from .base import STATUS_RANK, CheckOutcome, CheckStatus

QUERY_TEXT_LIMIT = 1000
HIDDEN_QUERY = "<insufficient privilege>"


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it (findings are stored in a JSONField)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else round(float(value), 3)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address | uuid.UUID):
        return str(value)
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    return str(value)


def rows(rows_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [jsonable(r) for r in rows_]


def escalate(current: CheckStatus, new: CheckStatus) -> CheckStatus:
    """The worse of two statuses."""
    return new if STATUS_RANK[new] > STATUS_RANK[current] else current


def by_threshold(
    value: float | None,
    warning: float | None,
    critical: float | None,
    *,
    lower_is_worse: bool = False,
) -> CheckStatus:
    """OK / WARNING / CRITICAL for a value against two thresholds (None disables one)."""
    if value is None:
        return CheckStatus.OK
    if lower_is_worse:
        if critical is not None and value < critical:
            return CheckStatus.CRITICAL
        if warning is not None and value < warning:
            return CheckStatus.WARNING
        return CheckStatus.OK
    if critical is not None and value >= critical:
        return CheckStatus.CRITICAL
    if warning is not None and value >= warning:
        return CheckStatus.WARNING
    return CheckStatus.OK


def with_coverage_gap(outcome: CheckOutcome, *, hidden: int, what: str, fix: str) -> CheckOutcome:
    """A check that could not see everything says so: at least WARNING, with the fix.

    "Nothing found" among what we could see is never reported as healthy when part was hidden.
    """
    if hidden <= 0:
        return outcome
    note = f"{hidden} {what} not visible to this role (coverage gap)"
    outcome.status = escalate(outcome.status, CheckStatus.WARNING)
    outcome.summary = f"{outcome.summary}; {note}" if outcome.summary else note
    outcome.fix = fix
    outcome.findings.append({"coverage_gap": note, "hidden": hidden, "fix": fix})
    return outcome


def version_tuple(version: str | None) -> tuple[int, ...]:
    """'1.10' -> (1, 10); extension versions compare numerically, not as strings."""
    parts = []
    for piece in (version or "0").split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def human_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    n = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def human_seconds(s: float | None) -> str:
    if s is None:
        return "?"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"
