"""Rules other apps ask before acting on an incident (wired through settings)."""

from incidents.severity import severity_policy

from .models import Postmortem, PostmortemStatus

SETTLED = (PostmortemStatus.PUBLISHED, PostmortemStatus.WAIVED)


def postmortem_settled_before_close(incident) -> str | None:
    """Why the incident may not close yet, or None: its postmortem must be published or waived.

    Severities that get no postmortem by policy (severity_policy().postmortem_required) close freely
    unless somebody started one anyway.
    """
    postmortem = Postmortem.objects.filter(incident_id=incident.pk).only("status").first()
    if postmortem is None:
        if not severity_policy(incident.severity).postmortem_required:
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
