"""config.kernel.renderers: the API's documents as DRF's JSON renderer writes them, via orjson."""

import datetime
import decimal
import json
import uuid

from django.utils.translation import gettext_lazy
from rest_framework.renderers import JSONRenderer as DrfJSONRenderer

from config.kernel.renderers import JSONRenderer, dumps

DOCUMENT = {
    "id": 7,
    "title": "Réplica atrasada — ünïcode stays UTF-8",
    "at": datetime.datetime(2026, 12, 4, 6, 0, 1, 123456, tzinfo=datetime.UTC),
    "local": datetime.datetime(
        2026, 12, 4, 8, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2))
    ),
    "day": datetime.date(2026, 12, 4),
    "ratio": decimal.Decimal("12.50"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "lazy": gettext_lazy("Invalid token."),
    "nested": [{"a": None, "b": True, "c": 1.5}, []],
    "separators": "line\u2028paragraph\u2029end",
}


def test_the_document_is_the_one_drf_renders():
    ours = JSONRenderer().render(DOCUMENT)
    drf = DrfJSONRenderer().render(DOCUMENT)
    assert json.loads(ours) == json.loads(drf)
    assert ours == drf


def test_line_and_paragraph_separators_are_escaped_for_javascript():
    text = JSONRenderer().render({"s": "a\u2028b\u2029c"})
    assert text == b'{"s":"a\\u2028b\\u2029c"}'


def test_an_indented_request_is_indented():
    text = JSONRenderer().render(
        {"a": 1}, accepted_media_type="application/json; indent=4", renderer_context={}
    )
    assert text == b'{\n    "a": 1\n}'


def test_digests_read_sorted_keys():
    assert dumps({"b": 1, "a": 2}, sort_keys=True) == b'{"a":2,"b":1}'
    assert JSONRenderer().render(None) == b""
