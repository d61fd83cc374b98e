"""Text that reaches a public page, a feed, an e-mail header or a chat message.

C0 control characters other than tab, line feed and carriage return (\\x00-\\x08, \\x0b, \\x0c,
\\x0e-\\x1f) have no use in those places and break them: XML 1.0 forbids them, so one \\x0b in a
published update made the Atom feed fail for everyone; terminals and chat clients interpret
\\x1b sequences. One validator refuses them wherever such text is typed (API serializers, web
forms, admin forms through the models); `without_control_characters` cleans text already stored
before it is rendered where it must not appear.
"""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

CONTROL_CHARACTERS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
MESSAGE = (
    "Control characters (such as \\x0b, \\x1b or \\x08) are not allowed here; use plain text "
    "with tabs and line breaks."
)


def refuse_control_characters(value) -> None:
    """A Django validator (forms, models and DRF serializers alike)."""
    if isinstance(value, str) and CONTROL_CHARACTERS.search(value):
        raise ValidationError(MESSAGE, code="control_characters")


def without_control_characters(text: str) -> str:
    """`text` with the refused characters removed (for data stored before the validator)."""
    return CONTROL_CHARACTERS.sub("", text or "")
