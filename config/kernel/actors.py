"""Who acted: services take an `actor` that may be a user, an anonymous user or None."""


def user_or_none(actor):
    """The authenticated user behind `actor`, or None (system work, anonymous callers)."""
    return actor if actor is not None and getattr(actor, "is_authenticated", False) else None
