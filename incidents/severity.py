"""Severity levels with the playbook's definitions, and the policy each severity carries.

The policy (roles, bridge, stakeholders, postmortem, review deadline, update cadence) is one
typed object per severity, read by every app through `severity_policy(severity)`. It is built
from settings: `QUELL_SEVERITY_POLICY` per field, else the older single-purpose settings
(QUELL_REQUIRED_ROLES, QUELL_BRIDGE_SEVERITIES, QUELL_STAKEHOLDERS, QUELL_POSTMORTEM_SEVERITIES,
QUELL_REVIEW_POLICY, QUELL_UPDATE_CADENCE). `policy_problems()` finds what would silently
misbehave ("SEV 1", a missing severity, an unknown role, a negative duration); the system check
in incidents.checks reports them at start-up.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models


class Severity(models.TextChoices):
    SEV1 = "SEV1", "SEV1 - Critical"
    SEV2 = "SEV2", "SEV2 - Major"
    SEV3 = "SEV3", "SEV3 - Minor"
    SEV4 = "SEV4", "SEV4 - Low"


# Verbatim from the playbook's "Incident Definition".
SEVERITY_DEFINITIONS = {
    Severity.SEV1: "Database completely unavailable or severe data corruption affecting all users",
    Severity.SEV2: (
        "Database performance severely degraded or data integrity issues affecting a "
        "significant subset of users"
    ),
    Severity.SEV3: "Minor database performance issues or isolated data integrity issues",
    Severity.SEV4: "Minimal database issues with negligible user impact",
}

# Lower rank is more severe; used to order and to compare ("SEV2 or worse").
SEVERITY_RANK = {Severity.SEV1: 1, Severity.SEV2: 2, Severity.SEV3: 3, Severity.SEV4: 4}


def severity_definition(severity: str) -> str:
    """The playbook's definition of a severity level."""
    return SEVERITY_DEFINITIONS[Severity(severity)]


# --- Policy -------------------------------------------------------------------------------

# Roles a severity may require: ResponderRole's values (incidents.models imports this module,
# so the names are repeated here; tests/incidents/test_severity_policy.py keeps them equal).
ROLE_NAMES = (
    "incident_commander",
    "technical_lead",
    "operations_lead",
    "communications_lead",
    "other",
)

# The next-update cadence used when QUELL_UPDATE_CADENCE is empty (after PagerDuty's practice).
DEFAULT_CADENCE = {
    "SEV1": {"first_minutes": 5, "every_minutes": 20},
    "SEV2": {"first_minutes": 5, "every_minutes": 60},
    "SEV3": {"every_minutes": 240},
    "SEV4": {},
}

# Fields of one severity in QUELL_SEVERITY_POLICY, and the older setting each falls back to.
POLICY_FIELDS = {
    "required_roles": "QUELL_REQUIRED_ROLES",
    "bridge": "QUELL_BRIDGE_SEVERITIES",
    "stakeholders": "QUELL_STAKEHOLDERS",
    "postmortem": "QUELL_POSTMORTEM_SEVERITIES",
    "review": "QUELL_REVIEW_POLICY",
    "update_cadence": "QUELL_UPDATE_CADENCE",
}
# The per-severity tables among them (the other two are lists of severities).
_TABLE_SETTINGS = (
    "QUELL_REQUIRED_ROLES",
    "QUELL_STAKEHOLDERS",
    "QUELL_REVIEW_POLICY",
    "QUELL_UPDATE_CADENCE",
)
_LIST_SETTINGS = ("QUELL_BRIDGE_SEVERITIES", "QUELL_POSTMORTEM_SEVERITIES")
_CADENCE_KEYS = ("first_minutes", "every_minutes")
# How policy_problems words a whole setting of the wrong shape.
_SHAPES = ("must be a JSON object.", "must be a list of severities.")

# System check ids (incidents.checks).
E_UNKNOWN_SEVERITY = "quell.E001"
E_MISSING_SEVERITY = "quell.E002"
E_UNKNOWN_ROLE = "quell.E003"
E_BAD_DURATION = "quell.E004"
E_MALFORMED = "quell.E005"


@dataclass(frozen=True)
class ReviewDeadline:
    """When a severity's post-incident review is due: `days` after resolution."""

    days: int
    business: bool

    def describe(self) -> str:
        unit = "business day" if self.business else "calendar day"
        return f"within {self.days} {unit}{'' if self.days == 1 else 's'} of resolution"


@dataclass(frozen=True)
class UpdateCadence:
    """Status updates owed: the first external one `first_minutes` after declaring, then one
    every `every_minutes` (None: not owed)."""

    first_minutes: int | None = None
    every_minutes: int | None = None


@dataclass(frozen=True)
class SeverityPolicy:
    """What a severity requires of the response."""

    severity: str
    required_roles: tuple[str, ...] = ()
    bridge: bool = False
    stakeholders: tuple[str, ...] = ()
    postmortem_required: bool = False
    review: ReviewDeadline | None = None
    update_cadence: UpdateCadence = field(default_factory=UpdateCadence)


class PolicyProblem(ImproperlyConfigured):
    """A severity policy setting that cannot be used as it is; `check_id` names the kind."""

    def __init__(self, check_id: str, message: str):
        super().__init__(message)
        self.check_id = check_id
        self.message = message


def severity_policy(severity: str) -> SeverityPolicy:
    """The policy of one severity, from settings (ValueError for an unknown severity)."""
    return _policy(Severity(severity).value)


def all_severity_policies() -> dict[str, SeverityPolicy]:
    """Every severity's policy, SEV1 first."""
    return {severity: _policy(severity) for severity in Severity.values}


def policy_problems() -> list[PolicyProblem]:
    """Everything wrong with the severity policy settings, for the system check."""
    problems: list[PolicyProblem] = []
    known = set(Severity.values)
    overrides = getattr(settings, "QUELL_SEVERITY_POLICY", None) or {}
    if not isinstance(overrides, dict):
        return [PolicyProblem(E_MALFORMED, "QUELL_SEVERITY_POLICY must be a JSON object.")]
    for key, value in overrides.items():
        if key not in known:
            problems.append(_unknown_severity("QUELL_SEVERITY_POLICY", key))
        elif not isinstance(value, dict):
            problems.append(
                PolicyProblem(E_MALFORMED, f"QUELL_SEVERITY_POLICY[{key!r}] must be an object.")
            )
        else:
            for name in value:
                if name not in POLICY_FIELDS:
                    problems.append(
                        PolicyProblem(
                            E_MALFORMED,
                            f"QUELL_SEVERITY_POLICY[{key!r}] has an unknown field {name!r}; "
                            f"the fields are {', '.join(POLICY_FIELDS)}.",
                        )
                    )
    for name in _TABLE_SETTINGS:
        table = getattr(settings, name, None)
        if name == "QUELL_UPDATE_CADENCE" and not table:
            continue  # empty: the default cadence
        if not isinstance(table, dict):
            problems.append(PolicyProblem(E_MALFORMED, f"{name} must be a JSON object."))
            continue
        problems += [_unknown_severity(name, key) for key in table if key not in known]
    for name in _LIST_SETTINGS:
        values = getattr(settings, name, None)
        if not isinstance(values, list | tuple):
            problems.append(PolicyProblem(E_MALFORMED, f"{name} must be a list of severities."))
            continue
        problems += [_unknown_severity(name, v) for v in values if v not in known]
    if any(p.message.endswith(_SHAPES) for p in problems):
        return problems  # a setting of the wrong shape: its entries cannot be read
    for severity in Severity.values:
        for name, setting in POLICY_FIELDS.items():
            try:
                _field(severity, name)
            except PolicyProblem as exc:
                problems.append(exc)
            if setting in _LIST_SETTINGS or _stated(overrides, severity, name):
                continue
            table = getattr(settings, setting)
            if setting == "QUELL_UPDATE_CADENCE" and not table:
                continue
            if severity not in table:
                problems.append(
                    PolicyProblem(
                        E_MISSING_SEVERITY,
                        f"{setting} has no entry for {severity} (nor has "
                        f"QUELL_SEVERITY_POLICY[{severity!r}][{name!r}]); state it, "
                        "empty or null when the severity needs none.",
                    )
                )
    return problems


def _unknown_severity(setting: str, key) -> PolicyProblem:
    return PolicyProblem(
        E_UNKNOWN_SEVERITY,
        f"{setting} names an unknown severity {key!r}; the severities are "
        f"{', '.join(Severity.values)}.",
    )


def _stated(overrides: dict, severity: str, name: str) -> bool:
    entry = overrides.get(severity)
    return isinstance(entry, dict) and name in entry


def _raw(severity: str, name: str):
    """A severity's value for one field: QUELL_SEVERITY_POLICY, else the older setting."""
    overrides = getattr(settings, "QUELL_SEVERITY_POLICY", None) or {}
    if isinstance(overrides, dict) and _stated(overrides, severity, name):
        return overrides[severity][name], f"QUELL_SEVERITY_POLICY[{severity!r}][{name!r}]"
    setting = POLICY_FIELDS[name]
    value = getattr(settings, setting)
    where = f"{setting}[{severity!r}]"
    if setting in _LIST_SETTINGS:
        return severity in (value or ()), setting
    if setting == "QUELL_UPDATE_CADENCE":
        # An empty table means the defaults; a severity left out of a table owes no updates.
        value = value or DEFAULT_CADENCE
    return (value or {}).get(severity), where


def _field(severity: str, name: str):
    """One field of a severity's policy, read and checked (PolicyProblem when unusable)."""
    value, where = _raw(severity, name)
    if name == "required_roles":
        roles = _string_list(value, where)
        for role in roles:
            if role not in ROLE_NAMES:
                raise PolicyProblem(
                    E_UNKNOWN_ROLE,
                    f"{where} names an unknown role {role!r}; the roles are "
                    f"{', '.join(ROLE_NAMES)}.",
                )
        return tuple(roles)
    if name == "stakeholders":
        return tuple(s.strip() for s in _string_list(value, where) if s.strip())
    if name == "review":
        return _review(value, where)
    if name == "update_cadence":
        return _cadence(value, where)
    return _bool(value, where)  # bridge, postmortem


def _build(severity: str) -> SeverityPolicy:
    return SeverityPolicy(
        severity=severity,
        required_roles=_field(severity, "required_roles"),
        bridge=_field(severity, "bridge"),
        stakeholders=_field(severity, "stakeholders"),
        postmortem_required=_field(severity, "postmortem"),
        review=_field(severity, "review"),
        update_cadence=_field(severity, "update_cadence"),
    )


def _string_list(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise PolicyProblem(E_MALFORMED, f"{where} must be a list of strings.")
    return list(value)


def _bool(value, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyProblem(E_MALFORMED, f"{where} must be true or false.")
    return value


def _duration(value, where: str) -> int:
    # bool is an int to Python; a number of days or minutes is not true or false.
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise PolicyProblem(E_MALFORMED, f"{where} must be a whole number.")
    if value < 0:
        raise PolicyProblem(E_BAD_DURATION, f"{where} must not be negative (it is {value}).")
    return int(value)


def _review(value, where: str) -> ReviewDeadline | None:
    if not value:
        return None
    if not isinstance(value, dict) or "days" not in value or set(value) - {"days", "business"}:
        raise PolicyProblem(
            E_MALFORMED, f'{where} must look like {{"days": 5, "business": true}}, or null.'
        )
    business = value.get("business", False)
    return ReviewDeadline(
        days=_duration(value["days"], f"{where}['days']"),
        business=_bool(business, f"{where}['business']"),
    )


def _cadence(value, where: str) -> UpdateCadence:
    if not value:
        return UpdateCadence()
    if not isinstance(value, dict) or set(value) - set(_CADENCE_KEYS):
        raise PolicyProblem(
            E_MALFORMED,
            f'{where} must look like {{"first_minutes": 5, "every_minutes": 20}} '
            "(either may be left out), or {}.",
        )
    minutes = {
        key: _duration(value[key], f"{where}[{key!r}]") or None
        for key in _CADENCE_KEYS
        if value.get(key) is not None
    }
    return UpdateCadence(**minutes)


# Per severity, so that one malformed entry stops only what reads that severity.
@functools.cache
def _policy(severity: str) -> SeverityPolicy:
    return _build(severity)


def _forget_policies(*, setting: str, **kwargs) -> None:
    # Tests and override_settings change settings at run time: rebuild on the next read.
    if setting == "QUELL_SEVERITY_POLICY" or setting in POLICY_FIELDS.values():
        _policy.cache_clear()


setting_changed.connect(_forget_policies, dispatch_uid="incidents.severity.forget_policies")
