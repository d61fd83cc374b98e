"""Severity levels with the playbook's definitions, shown wherever a severity is chosen."""

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


def is_at_least(severity: str, threshold: str) -> bool:
    """True when `severity` is as severe as `threshold` or worse (SEV1 is the worst)."""
    return SEVERITY_RANK[Severity(severity)] <= SEVERITY_RANK[Severity(threshold)]
