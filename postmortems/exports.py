"""The postmortem as a Markdown document (download and API)."""

from __future__ import annotations

import re

from django.template.loader import render_to_string

from . import selectors
from .models import SECTIONS, Postmortem


def postmortem_markdown(postmortem: Postmortem) -> str:
    """The whole report in Markdown: facts, sections, chosen timeline, times, action items."""
    text = render_to_string(
        "postmortems/export.md",
        {
            "postmortem": postmortem,
            "incident": postmortem.incident,
            "sections": [(label, getattr(postmortem, name)) for name, label in SECTIONS],
            "timeline": selectors.selected_timeline(postmortem),
            "times": selectors.response_times(postmortem.incident),
            "items": selectors.action_item_list(filters={"postmortem": postmortem}),
            "review": selectors.current_review(postmortem),
        },
    )
    # A heading needs a blank line before it (CommonMark renderers differ without one, and the
    # template's loops cannot always leave one, e.g. after the last timeline entry).
    return HEADING_WITHOUT_BLANK_LINE.sub(r"\1\n\n\2", text)


HEADING_WITHOUT_BLANK_LINE = re.compile(r"([^\n])\n(#{1,6} )")


def markdown_filename(postmortem: Postmortem) -> str:
    return f"postmortem-incident-{postmortem.incident_id}.md"
