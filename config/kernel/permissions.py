"""Access levels: four groups in rising order of power, and the DRF permissions built on them.

viewer     reads everything (other sessions' query texts on targets excepted)
responder  declares incidents, writes notes and reports, edits details, takes unprivileged roles
commander  also changes status and severity, grants every role
admin      everything, including configuration

A superuser is an admin. Rules about one incident (its Incident Commander, who may grant which
role) live in incidents.permissions, built on these.
"""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

VIEWER, RESPONDER, COMMANDER, ADMIN = "viewer", "responder", "commander", "admin"
ROLE_LEVELS = {VIEWER: 1, RESPONDER: 2, COMMANDER: 3, ADMIN: 4}


def user_level(user) -> int:
    """The highest access level the user's groups grant (0 for none)."""
    if user is None or isinstance(user, AnonymousUser) or not user.is_authenticated:
        return 0
    if not user.is_active:
        return 0
    if user.is_superuser:
        return ROLE_LEVELS[ADMIN]
    cached = getattr(user, "_quell_level", None)
    if cached is None:
        cached = remember_groups(user, user.groups.values_list("name", flat=True))
    return cached


def remember_groups(user, group_names) -> int:
    """Record the access level that `group_names` grant on this user object (per request)."""
    user._quell_level = max((ROLE_LEVELS[n] for n in group_names if n in ROLE_LEVELS), default=0)
    return user._quell_level


def user_has_role(user, role: str) -> bool:
    """True when the user holds `role` or a more powerful one."""
    return user_level(user) >= ROLE_LEVELS[role]


def require_role(user, role: str) -> None:
    """Refuse (403 in views) unless the user holds `role` or a more powerful one."""
    if not user_has_role(user, role):
        raise PermissionDenied(f"You need the {role} role (or higher) for this.")


def role_required(role: str):
    """A web view's guard: the sign-in page for an anonymous visitor, 403 without `role`."""

    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            require_role(request.user, role)
            return view(request, *args, **kwargs)

        return login_required(guarded)

    return decorator


class _RolePermission(BasePermission):
    role = VIEWER
    message = "You need the {role} role for this."

    def has_permission(self, request, view):
        self.message = f"You need the {self.role} role (or higher) for this."
        return user_has_role(request.user, self.role)


class IsViewer(_RolePermission):
    role = VIEWER


class IsResponder(_RolePermission):
    role = RESPONDER


class IsCommander(_RolePermission):
    role = COMMANDER


class IsAdmin(_RolePermission):
    role = ADMIN


class ReadWriteRolePermission(BasePermission):
    """Safe methods (GET, HEAD, OPTIONS) need read_role; the others need write_role."""

    read_role = VIEWER
    write_role = RESPONDER

    def has_permission(self, request, view):
        safe = request.method in ("GET", "HEAD", "OPTIONS")
        return user_has_role(request.user, self.read_role if safe else self.write_role)


class ReadViewerWriteResponder(ReadWriteRolePermission):
    """Safe methods for viewers, writes for responders."""

    message = "Reading needs the viewer role; changing needs the responder role."


class ReadViewerWriteAdmin(ReadWriteRolePermission):
    """Safe methods for viewers, writes for admins (configuration)."""

    message = "Reading needs the viewer role; changing needs the admin role."
    write_role = ADMIN
