"""Who may do what: four groups in rising order of power, plus per-incident roles.

viewer     reads everything (other sessions' query texts on targets excepted)
responder  declares incidents, writes notes and reports, edits details, takes unprivileged roles
commander  also changes status and severity, grants every role
admin      everything, including configuration

A superuser is an admin. The Incident Commander assigned on an incident has commander rights on
that incident even if their group is only responder: the playbook gives the IC the call. Some
roles carry rights of their own (PRIVILEGED_ROLES), so who may grant them is checked here, in
one place, by every path that assigns roles (services.role_assign / role_relieve).
"""

from rest_framework.permissions import BasePermission

from config.kernel.permissions import (
    COMMANDER,
    RESPONDER,
    user_has_role,
)

# Incident roles (incidents.models.ResponderRole values; plain strings so that this module stays
# free of models) and the rights they carry on their incident.
INCIDENT_COMMANDER = "incident_commander"
TECHNICAL_LEAD = "technical_lead"
COMMUNICATIONS_LEAD = "communications_lead"
# Publishing to the public status page (comms).
PUBLISHING_ROLES = (INCIDENT_COMMANDER, COMMUNICATIONS_LEAD)
# Cancelling and terminating backends on the incident's targets (remediation).
REMEDIATING_ROLES = (INCIDENT_COMMANDER, TECHNICAL_LEAD)
# Granted only by a commander or the incident's IC (IC itself: also by the IC, as handover).
PRIVILEGED_ROLES = (INCIDENT_COMMANDER, TECHNICAL_LEAD, COMMUNICATIONS_LEAD)


def user_holds_incident_role(user, incident, roles) -> bool:
    """True when the user (a responder or above) currently holds one of `roles` on the incident.

    Below responder a role carries no rights: a viewer named IC still only reads.
    """
    if not user_has_role(user, RESPONDER):
        return False
    # Selectors prefetch the current holders; use them instead of another query when present.
    active = getattr(incident, "active_assignments", None)
    if active is not None:
        return any(a.user_id == user.pk and a.role in roles for a in active)
    return incident.assignments.filter(
        user=user, role__in=list(roles), relieved_at__isnull=True
    ).exists()


def user_commands_incident(user, incident) -> bool:
    """Commander rights on this incident: commander group, or its current Incident Commander."""
    if user_has_role(user, COMMANDER):
        return True
    return user_holds_incident_role(user, incident, (INCIDENT_COMMANDER,))


def user_may_remediate_incident(user, incident) -> bool:
    """Remediation on the incident's targets: commanders, its IC and its Technical Lead."""
    if user_has_role(user, COMMANDER):
        return True
    return user_holds_incident_role(user, incident, REMEDIATING_ROLES)


def user_may_publish_incident(user, incident) -> bool:
    """Public status-page updates: commanders, its IC and its Communications Lead."""
    if user_has_role(user, COMMANDER):
        return True
    return user_holds_incident_role(user, incident, PUBLISHING_ROLES)


def role_grant_refusal(user, incident, role: str) -> str:
    """Why `user` may not grant (or relieve somebody else of) `role` on the incident; '' if
    they may. The same rule for the API, the web pages, the admin and every service caller."""
    if not user_has_role(user, RESPONDER):
        return "Assigning roles needs the responder role (or higher)."
    if role not in PRIVILEGED_ROLES or user_commands_incident(user, incident):
        return ""
    if role == INCIDENT_COMMANDER:
        return (
            "Only a commander, an admin or the current Incident Commander (handing over) may "
            "assign or relieve the Incident Commander."
        )
    rights = "publishes to the status page" if role == COMMUNICATIONS_LEAD else "may remediate"
    label = role.replace("_", " ").title()
    return (
        f"The {label} {rights}: only a commander, an admin or this incident's Incident "
        "Commander may assign or relieve it."
    )


def grantable_roles(user, incident, roles) -> list[str]:
    """The subset of `roles` the user may grant on this incident (for forms and buttons)."""
    return [r for r in roles if not role_grant_refusal(user, incident, r)]


def role_relieve_refusal(user, incident, *, role: str, holder_id: int) -> str:
    """Why `user` may not relieve this holder of `role` ('' if they may): anybody may step
    down from a role of their own; relieving somebody else follows the grant rule."""
    if user_has_role(user, RESPONDER) and holder_id == user.pk:
        return ""
    return role_grant_refusal(user, incident, role)


class CommandsIncident(BasePermission):
    """Commander group, or the incident's own Incident Commander."""

    message = "Only a commander or this incident's Incident Commander may do this."

    def has_permission(self, request, view):
        return user_has_role(request.user, RESPONDER)

    def has_object_permission(self, request, view, obj):
        return user_commands_incident(request.user, obj)
