"""The contract every diagnostic check follows, and the registry that holds them.

A check is a small class: it reads a target through a `TargetSession` (never the ORM) and
returns a `CheckOutcome`. The runner (diagnostics.runner) gives each check its own savepoint and
time budget, so one failing or timed-out check does not spoil the others; the services store
outcomes as CheckResult rows.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, ClassVar


class CheckStatus(enum.StrEnum):
    OK = "ok"
    WARNING = "warning"
    CRITICAL = "critical"
    ERROR = "error"  # the check could not run (timeout, lost connection, SQL error)
    SKIPPED = "skipped"  # not applicable or not visible here (extension missing, version gate)


# Worse statuses rank higher; a run's overall status is its worst check's.
STATUS_RANK = {
    CheckStatus.OK: 0,
    CheckStatus.SKIPPED: 1,
    CheckStatus.WARNING: 2,
    CheckStatus.ERROR: 3,
    CheckStatus.CRITICAL: 4,
}


def worst(statuses) -> CheckStatus:
    """The worst of the given statuses (OK for none)."""
    return max(
        (CheckStatus(s) for s in statuses), key=STATUS_RANK.__getitem__, default=CheckStatus.OK
    )


@dataclasses.dataclass
class CheckOutcome:
    status: CheckStatus
    summary: str  # one line a responder reads first
    findings: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # JSON-safe rows
    # Counters a later run can be compared with (per-second deltas): {"deadlocks": 12, ...}
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str = ""  # for ERROR: what went wrong, with no credentials in it
    fix: str = ""  # for SKIPPED/coverage gaps: the statement or setting that enables the check


@dataclasses.dataclass(frozen=True)
class PreviousResult:
    """The same check's result in the target's previous run (any trigger, monitor runs
    included), for checks that judge a change rather than a lifetime total."""

    status: str
    metrics: dict[str, Any]
    age_s: float | None = None  # seconds between that run and this one
    run_id: int | None = None


class Family(enum.StrEnum):
    CONNECTION = "connection"
    ACTIVITY = "activity"  # connections, long queries, idle in transaction
    LOCKS = "locks"
    PERFORMANCE = "performance"  # slow queries, cache hit ratio
    MAINTENANCE = "maintenance"  # bloat, vacuum, wraparound, invalid indexes, sequences
    ERRORS = "errors"  # deadlocks, rollbacks, temp files
    REPLICATION = "replication"
    STORAGE = "storage"  # database and table sizes
    CHANGES = "changes"  # recent migrations and schema changes


class Check:
    """Base class. Subclasses set the class attributes and implement `run`."""

    key: ClassVar[str]
    title: ClassVar[str]
    family: ClassVar[Family]
    description: ClassVar[str] = ""
    # The main SQL the check sends (for display and review). Checks whose SQL depends on the
    # server or extension version build the variant in run() (see their `sql_for`).
    sql: ClassVar[str] = ""
    min_server_version: ClassVar[int | None] = None  # server_version_num, e.g. 130000
    max_server_version: ClassVar[int | None] = None
    # Default thresholds; a target's or a run's overrides are merged over these.
    default_thresholds: ClassVar[dict[str, Any]] = {}
    # True when a pass verifies a definition (an index now valid, a duplicate dropped) rather
    # than a momentary state: an action item gated on it closes on one pass, where a state
    # check must keep passing over a window (postmortems' verification gates).
    verifies_definition: ClassVar[bool] = False

    def __init__(
        self, thresholds: dict[str, Any] | None = None, previous: PreviousResult | None = None
    ):
        # The runner passes the previous result of this check for the same target, if any.
        self.previous = previous
        merged = {**self.default_thresholds}
        for name, value in (thresholds or {}).items():
            merged[name] = _coerce(name, value, self.default_thresholds.get(name))
        self.thresholds = merged

    def run(self, session: TargetSession) -> CheckOutcome:  # noqa: F821 (see diagnostics.target)
        raise NotImplementedError


def _coerce(name: str, value: Any, default: Any) -> Any:
    """An override in its default's type ("300" from a form or JSON -> 300.0); clear if not."""
    if value is None or default is None or isinstance(value, type(default)):
        return value
    try:
        if isinstance(default, bool):
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            return int(float(value))
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"threshold {name!r} must be like {default!r}, not {value!r}") from None
    return value


class CheckRegistry:
    """Checks by key, in registration order (cf. django.core.checks.registry)."""

    def __init__(self):
        self._checks: dict[str, type[Check]] = {}

    def register(self, check_class: type[Check]) -> type[Check]:
        """Class decorator: add a check; keys are unique."""
        if check_class.key in self._checks:
            raise ValueError(f"Duplicate check key {check_class.key!r}")
        self._checks[check_class.key] = check_class
        return check_class

    def unregister(self, key: str) -> type[Check] | None:
        """Remove a check by key (plugins and tests that add one for a while); returns it, or
        None when no check has that key."""
        return self._checks.pop(key, None)

    def get(self, key: str) -> type[Check]:
        return self._checks[key]

    def keys(self) -> list[str]:
        return list(self._checks)

    def all(self) -> list[type[Check]]:
        return list(self._checks.values())

    def by_family(self, family: str) -> list[type[Check]]:
        return [c for c in self._checks.values() if c.family == family]

    def select(
        self, *, keys: list[str] | None = None, family: str | None = None
    ) -> list[type[Check]]:
        """A suite: chosen keys, a family, or everything. Unknown keys raise KeyError."""
        if keys:
            return [self._checks[k] for k in keys]
        if family:
            return self.by_family(family)
        return self.all()


registry = CheckRegistry()
register = registry.register
