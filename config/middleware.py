"""Refusing input PostgreSQL cannot store before any view sees it.

PostgreSQL refuses NUL (U+0000) in text and jsonb: a NUL that reaches a query as a filter value,
a primary key from the path or a JSON key ends as a 500 (ValueError from psycopg, or
"unsupported Unicode escape sequence"). No field of Quell has a use for one, so a NUL anywhere in
the path, the query string, a form body or a JSON body is a 400 with a message, for every page
and API endpoint alike.
"""

from __future__ import annotations

import json
import re

import django.middleware.common
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse

from config.kernel.api import error_body

NUL = "\x00"
MESSAGE = (
    "NUL characters (\\x00 or %00) and unpaired UTF-16 surrogates (such as \\ud800) are not "
    "allowed in {where}."
)
_SURROGATE = re.compile("[\ud800-\udfff]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _unstorable(text: str) -> bool:
    """NUL, or a lone UTF-16 surrogate ("\\ud800" in JSON), which UTF-8 cannot encode."""
    return NUL in text or _SURROGATE.search(text) is not None


def _has_nul(value) -> bool:
    if isinstance(value, str):
        return _unstorable(value)
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _nul_in_querydict(querydict) -> bool:
    return any(NUL in key or any(NUL in v for v in values) for key, values in querydict.lists())


def nul_location(request: HttpRequest) -> str:
    """Where the request carries a NUL ("" for nowhere)."""
    if NUL in request.path_info:
        return "the address"
    if _nul_in_querydict(request.GET):
        return "the query string"
    if request.method in ("POST", "PUT", "PATCH"):
        content_type = request.content_type or ""
        if content_type in _FORM_TYPES:
            # Read (and cache) the raw body before parsing the form: parsing a multipart body
            # consumes the stream, and a view reading request.body afterwards (the alert
            # webhooks log refused payloads) would fail with RawPostDataException, a 500.
            request.body  # noqa: B018
            if _nul_in_querydict(request.POST):
                return "the form"
        elif content_type == "application/json" or content_type.endswith("+json"):
            raw = request.body or b"null"
            if b"\\u" not in raw and b"\x00" not in raw:
                # JSON can only carry a NUL or a lone surrogate as a \u escape (a raw control
                # character or invalid UTF-8 is not JSON at all): none here, nothing to parse.
                return ""
            try:
                body = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                return ""  # not JSON: the view's parser says so
            if _has_nul(body):
                return "the request body"
    return ""


class RefuseNulMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        where = nul_location(request)
        if where:
            message = MESSAGE.format(where=where)
            if request.path_info.startswith("/api/"):
                return JsonResponse(error_body(message, "invalid"), status=400)
            return HttpResponseBadRequest(message, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class CommonMiddleware(django.middleware.common.CommonMiddleware):
    """Django's, except that an API path missing its trailing slash is a JSON 404 naming the
    right path: Django would redirect it (a client then re-sends a write as a GET, or drops its
    body) or, for a write with DEBUG on, fail with a 500."""

    def process_response(self, request, response):
        if (
            response.status_code == 404
            and request.path_info.startswith("/api/")
            and self.should_redirect_with_slash(request)
        ):
            path = request.path + "/"
            return JsonResponse(
                error_body(
                    f"No such route: send it to {path} (with the trailing slash).", "not_found"
                ),
                status=404,
            )
        return super().process_response(request, response)
