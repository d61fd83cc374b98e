"""What every mail Quell sends has in common."""

from __future__ import annotations

from config.validators import without_control_characters

SUBJECT_LIMIT = 250


def mail_subject(text: str, *, limit: int = SUBJECT_LIMIT) -> str:
    """A subject as one header line: every run of whitespace (\\r, \\n, tabs, \\u2028 ...)
    folded to one space, and cut to `limit` characters.

    Django refuses a subject with a \\r or \\n (BadHeaderError, header injection): an incident
    titled with one would otherwise fail, and be retried, on every mail about it.
    """
    return " ".join(without_control_characters(str(text or "")).split())[:limit]
