"""The four access groups and the Django permissions each gets (for the admin).

Run after every migrate (see IncidentsConfig.ready) so new models' permissions reach the groups.
The REST API checks group membership through incidents.permissions; these model permissions
make the admin agree with it.
"""

from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission

from config.kernel.permissions import ADMIN, COMMANDER, RESPONDER, VIEWER

QUELL_APPS = (
    "incidents",
    "diagnostics",
    "integrity",
    "remediation",
    "detection",
    "comms",
    "postmortems",
)

# Models responders may add/change in the admin (beyond viewing everything).
RESPONDER_WRITES = {
    "incidents": {"incident", "responderassignment", "timelineevent"},
    "diagnostics": {"diagnosticrun"},
    "comms": {"statusupdate"},
    "postmortems": {"postmortem", "actionitem", "review"},
}


def ensure_groups(apps=None, **kwargs) -> None:
    """Create or refresh the viewer/responder/commander/admin groups."""
    apps = apps or django_apps
    perms = Permission.objects.filter(content_type__app_label__in=QUELL_APPS).select_related(
        "content_type"
    )
    view = [p for p in perms if p.codename.startswith("view_")]
    responder = view + [
        p
        for p in perms
        if p.content_type.model in RESPONDER_WRITES.get(p.content_type.app_label, set())
        and p.codename.split("_", 1)[0] in ("add", "change")
    ]
    admin = list(perms)
    for name, granted in (
        (VIEWER, view),
        (RESPONDER, responder),
        (COMMANDER, responder),
        (ADMIN, admin),
    ):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(granted)
