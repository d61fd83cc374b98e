"""One display name for a person, everywhere (timeline, team panel, comms, postmortems)."""

from __future__ import annotations


def display_name(user) -> str:
    """The user's full name, or their username when they have none; "" for nobody.

    The timeline, the team panel, e-mails and exports all call this (or the `display_name`
    template filter), so the same person never appears as "demo-commander" in one place and
    "Dana Commander" in another.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return ""
    return (user.get_full_name() or "").strip() or user.get_username()
