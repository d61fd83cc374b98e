"""Other sessions' query texts on targets: responders and up read them, viewers do not.

A query text can carry anything the application put in it (an e-mail address in a WHERE, a
token in an INSERT), so it is shown to the people who work the incident, not to every reader.
One rule for every place a text can surface: check findings (API, run and compare pages, the
incident panel), comparisons, the incident's diagnostics summary and remediation records.
"""

from __future__ import annotations

from typing import Any

from config.kernel.permissions import RESPONDER, user_has_role

HIDDEN = "(hidden: query texts are shown to responders and up)"


def is_query_key(key: object) -> bool:
    """A field that holds SQL text (query, blocking_query, ...), not a query's id or time."""
    return isinstance(key, str) and (key == "query" or key.endswith("_query"))


def may_read(user) -> bool:
    return user_has_role(user, RESPONDER)


def redacted(value: Any) -> Any:
    """A copy of `value` with every non-empty query text replaced by a note saying why."""
    if isinstance(value, dict):
        return {
            key: (HIDDEN if is_query_key(key) and item else redacted(item))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [redacted(item) for item in value]
    return value


def for_user(value: Any, user) -> Any:
    """`value` as `user` may read it."""
    return value if may_read(user) else redacted(value)
