"""Turn every error into one JSON envelope: one table for every app's API.

    {"detail": "what went wrong, for the person reading it",
     "code": "a stable machine code",
     "errors": {"field": ["message", ...]}}

`errors` is empty unless inputs are at fault; its keys are the request's field names (a
message about part of a nested field starts with that part's path: "0.labels: This field is
required."), messages not about one field are under "non_field_errors". The codes per status
are in CODES (docs/api.md lists them).
"""

import re

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import Conflict, NotFound, PermissionDenied, QuellError

# Most specific first: the first class the error is an instance of answers.
STATUS_FOR_ERROR = (
    (Conflict, status.HTTP_409_CONFLICT),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (PermissionDenied, status.HTTP_403_FORBIDDEN),
    (QuellError, status.HTTP_400_BAD_REQUEST),
)

# The stable code of each status when the error names none of its own.
CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "idempotency_key_reused",
    429: "throttled",
    500: "error",
}

# Django's default 404 message names the model ("No StatusUpdate matches the given query.").
_MODEL_NOT_FOUND = re.compile(r"^No \w+ matches the given query\.?$")


def error_body(detail: str, code: str, errors: dict | None = None) -> dict:
    """The envelope every API error answers with."""
    return {"detail": detail, "code": code, "errors": errors or {}}


def field_errors(data) -> dict[str, list[str]]:
    """DRF's error data as {field: [messages]}: one key per input field; a message about a
    part of a nested field starts with that part's path ("0.labels: This field is required.")."""
    if isinstance(data, dict):
        return {str(key): _messages(value) for key, value in data.items()}
    return {api_settings.NON_FIELD_ERRORS_KEY: _messages(data)}


def _messages(value, path: str = "") -> list[str]:
    prefix = f"{path}: " if path else ""
    if isinstance(value, dict):
        return [
            message
            for key, inner in value.items()
            for message in _messages(inner, f"{path}.{key}" if path else str(key))
        ]
    if isinstance(value, list):
        if all(not isinstance(item, (dict, list)) for item in value):
            return [prefix + str(message) for message in value]
        return [
            message
            for index, item in enumerate(value)
            if item  # a list of items: the ones without errors are empty
            for message in _messages(item, f"{path}.{index}" if path else str(index))
        ]
    return [prefix + str(value)]


def invalid_detail(errors: dict[str, list[str]]) -> str:
    """One sentence naming each field at fault and its first message."""
    if not errors:
        return "Invalid input."
    parts = [
        message if name == api_settings.NON_FIELD_ERRORS_KEY else f"{name}: {message}"
        for name, messages in errors.items()
        for message in messages[:1]
    ]
    return "Invalid input: " + "; ".join(p.rstrip(".") for p in parts) + "."


def error_response(exc: QuellError) -> Response:
    """A domain error services raised."""
    http_status = next(code for cls, code in STATUS_FOR_ERROR if isinstance(exc, cls))
    errors = {exc.field: [str(exc)]} if exc.field and http_status == 400 else {}
    return Response(error_body(str(exc), exc.code, errors), status=http_status)


def exception_handler(exc, context):
    """DRF's handler (headers such as Retry-After and WWW-Authenticate), then the envelope;
    the domain errors services raise too (settings.REST_FRAMEWORK)."""
    if isinstance(exc, QuellError):
        return error_response(exc)
    if isinstance(exc, Http404) and _MODEL_NOT_FOUND.match(str(exc)):
        exc = Http404("Not found.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # not an API error: Django's 500 handling (config.errors) answers
    code = CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.APIException):
        code = _code_of(exc) or code
    if isinstance(exc, exceptions.ValidationError):
        errors = field_errors(response.data)
        response.data = error_body(invalid_detail(errors), code, errors)
        return response
    detail = response.data.get("detail") if isinstance(response.data, dict) else None
    response.data = error_body(str(detail or exc), code)
    return response


def _code_of(exc: exceptions.APIException) -> str:
    """The exception's own code when it is one string (DRF: "not_authenticated", ...)."""
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return ""
