"""Template hygiene that Django does not check: a {# comment #} spans one line only."""

import re
from pathlib import Path

from django.conf import settings

ROOT = Path(settings.BASE_DIR)


def _templates():
    for path in ROOT.rglob("*.html"):
        parts = path.relative_to(ROOT).parts
        if parts[0] in {".venv", "var", "test-artifacts", "node_modules"}:
            continue
        if "templates" in parts:
            yield path


def test_no_comment_spans_lines():
    # Django ends a {# comment #} at the line's end: one opened and not closed on its line is
    # shown to the reader as text (the public status page showed one to every visitor).
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _templates()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\{#(?!.*#\})", line)
    ]
    assert offenders == []


def test_the_public_status_page_shows_no_template_syntax(client, db):
    from comms import status_cache

    status_cache.invalidate()  # rendered now, not an earlier copy from the shared cache
    body = client.get("/status/").content.decode()
    assert "{#" not in body and "#}" not in body and "{%" not in body
