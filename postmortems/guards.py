"""Rules other apps ask before acting on an incident (wired through settings)."""

from django.conf import settings

from .models import Postmortem, PostmortemStatus

SETTLED = (PostmortemStatus.PUBLISHED, PostmortemStatus.WAIVED)


def postmortem_settled_before_close(incident) -> str | None:
    """Why the incident may not close yet, or None: its postmortem must be published or waived.

    Severities that get no postmortem by policy (QUELL_POSTMORTEM_SEVERITIES) close freely
    unless somebody started one anyway.
    """
    postmortem = Postmortem.objects.filter(incident_id=incident.pk).only("status").first()
    if postmortem is None:
        if incident.severity not in settings.QUELL_POSTMORTEM_SEVERITIES:
            return None
        return (
            f"Incident #{incident.pk} ({incident.severity}) closes when its postmortem is "
            "published or waived; it has none yet. Start the postmortem, or waive it."
        )
    if postmortem.status in SETTLED:
        return None
    return (
        f"Incident #{incident.pk} closes when its postmortem is published or waived; the "
        f"postmortem is {postmortem.get_status_display().lower()}. Publish or waive it."
    )
