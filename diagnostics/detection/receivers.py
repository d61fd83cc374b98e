"""Detection's answers to the incident lifecycle (incidents.signals, sent after commit)."""

from . import services


def close_alert_groups(sender, *, incident_id: int, **kwargs) -> None:
    services.alert_groups_close(incident_id=incident_id)


def reopen_alert_groups(sender, *, incident_id: int, **kwargs) -> None:
    services.alert_groups_reopen(incident_id=incident_id)


def forget_target_resolutions(sender, **kwargs) -> None:
    """A target was saved or deleted: alerts resolve against the new state at once."""
    from .mapping import forget_target_resolutions as forget

    forget()
