"""Errors postmortem services raise. They extend the incident errors so the API's exception
handler answers them the same way (400 with the field, 409 on a conflict)."""

from incidents.services import IncidentConflict, IncidentError


class PostmortemError(IncidentError):
    """A request the rules refuse; `field` names the input at fault when there is one."""


class PostmortemConflict(IncidentConflict):
    """Another author saved first and changed the same text.

    Carries what the caller needs to show both versions and keep the user's text:
    `current` (the postmortem as saved now), `conflicts` ({field: their value}) and `mine`
    (what this caller tried to save).
    """

    def __init__(self, message: str, *, current, conflicts: dict, mine: dict):
        super().__init__(message)
        self.current = current
        self.conflicts = conflicts
        self.mine = mine
