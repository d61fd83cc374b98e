"""Template helpers for postmortem pages."""

import datetime

from django import template

from postmortems.markdown import render_markdown

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text):
    """Render Markdown safely (markdown-it-py + nh3)."""
    return render_markdown(text)


@register.filter
def duration(value):
    """A timedelta as '1 h 05 min' (or '—' when unknown)."""
    if value is None:
        return "—"
    if not isinstance(value, datetime.timedelta):
        return value
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{sign}{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    if minutes >= 10:
        return f"{sign}{minutes} min"
    if minutes:
        return f"{sign}{minutes} min {seconds:02d} s"
    return f"{sign}{seconds} s"


@register.simple_tag
def postmortem_panel(incident):
    """What the incident page's postmortem panel shows."""
    from postmortems import selectors

    postmortem = selectors.postmortem_for_incident(incident_id=incident.pk)
    if postmortem is None:
        return {"postmortem": None}
    items = selectors.action_item_list(filters={"postmortem": postmortem})
    return {
        "postmortem": postmortem,
        "review": selectors.current_review(postmortem),
        "late": selectors.review_is_late(postmortem),
        "open_items": items.filter(status__in=("open", "in_progress")).count(),
        "overdue_items": selectors.action_item_list(
            filters={"postmortem": postmortem}, overdue=True
        ).count(),
    }
