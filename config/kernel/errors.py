"""One exception hierarchy for the rules services enforce (the API maps it in kernel.api)."""


class QuellError(Exception):
    """A request the rules refuse; `field` names the input at fault when there is one (400)."""

    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class NotFound(QuellError):
    """The thing asked for does not exist (404)."""

    code = "not_found"


class Conflict(QuellError):
    """Somebody else changed it first; re-read and decide again (409)."""

    code = "conflict"


class PermissionDenied(QuellError):
    """The user's role does not allow this (403)."""

    code = "permission_denied"
