"""Turn service errors into clear HTTP answers: 400 with a message, 409 on a conflict."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from incidents.services import IncidentConflict, IncidentError


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
    """DRF's handler, plus the domain errors services raise."""
    if isinstance(exc, IncidentConflict):
        return Response({"detail": str(exc), "code": "conflict"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, IncidentError):
        body = {"detail": str(exc), "code": exc.code}
        if exc.field:
            body[exc.field] = [str(exc)]
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    response = drf_exception_handler(exc, context)
    if response is not None and response.status_code == status.HTTP_400_BAD_REQUEST:
        response.data = with_detail(response.data)
    return response
