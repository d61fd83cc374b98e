from django import template

from diagnostics.detection import selectors

register = template.Library()


@register.simple_tag
def incident_signals(incident):
    """{% incident_signals incident as signals %}: the signals panel's rows."""
    return selectors.incident_signals(incident_id=incident.pk)
