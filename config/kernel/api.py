"""Turn the kernel's errors into clear HTTP answers: one table for every app's API."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import Conflict, NotFound, PermissionDenied, QuellError

# Most specific first: the first class the error is an instance of answers.
STATUS_FOR_ERROR = (
    (Conflict, status.HTTP_409_CONFLICT),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (PermissionDenied, status.HTTP_403_FORBIDDEN),
    (QuellError, status.HTTP_400_BAD_REQUEST),
)


def error_response(exc: QuellError) -> Response:
    """{"detail", "code"} and, for a 400 naming a field, that field's message list."""
    http_status = next(code for cls, code in STATUS_FOR_ERROR if isinstance(exc, cls))
    body = {"detail": str(exc), "code": exc.code}
    if http_status == status.HTTP_400_BAD_REQUEST and exc.field:
        body[exc.field] = [str(exc)]
    return Response(body, status=http_status)


def with_detail(data):
    """A 400 body with a `detail` sentence beside the field messages (every error has one)."""
    if isinstance(data, list):
        return {"detail": " ".join(str(m) for m in data) or "Invalid input.", "code": "invalid"}
    if isinstance(data, dict) and "detail" not in data:
        parts = []
        for field, messages in data.items():
            first = messages[0] if isinstance(messages, list) and messages else messages
            if isinstance(first, dict):
                first = "invalid values"
            parts.append(f"{field}: {first}")
        body = {"detail": "Invalid input: " + "; ".join(parts) + "." if parts else "Invalid input."}
        body.update(data)
        body.setdefault("code", "invalid")
        return body
    return data


def exception_handler(exc, context):
    """DRF's handler, plus the domain errors services raise (settings.REST_FRAMEWORK)."""
    if isinstance(exc, QuellError):
        return error_response(exc)
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = with_detail(response.data)
    return response
