"""Small display helpers for the responder pages."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template

from config.kernel.permissions import user_has_role
from incidents.names import display_name as _display_name
from incidents.severity import SEVERITY_DEFINITIONS, Severity

register = template.Library()


@register.filter
def duration(seconds) -> str:
    """Seconds as a short human duration: 45s, 12m 05s, 3h 04m, 2d 5h."""
    if seconds is None or seconds == "":
        return "\u2013"
    seconds = round(float(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


@register.filter
def display_name(user) -> str:
    """The one name a person goes by on every page (incidents.names.display_name)."""
    return _display_name(user)


@register.filter
def severity_definition(value) -> str:
    """The playbook's definition of a severity."""
    try:
        return SEVERITY_DEFINITIONS[Severity(value)]
    except ValueError:
        return ""


@register.simple_tag(takes_context=True)
def query_with(context, **changes) -> str:
    """The current query string with some parameters replaced (None or "" removes them)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None or value == "":
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + urlencode(list(params.lists()), doseq=True) if params else "?"


@register.simple_tag
def has_role(user, role: str) -> bool:
    """{% has_role user "responder" as ok %}: the user holds that access level or higher."""
    return user_has_role(user, role)


@register.filter
def safe_link(value) -> str:
    """A link from event data, only when it is a relative or http(s) URL (never javascript:)."""
    text = str(value or "").strip()
    if text.startswith("/") and not text.startswith("//"):
        return text
    if text.lower().startswith(("http://", "https://")):
        return text
    return ""
