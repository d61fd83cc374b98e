"""Turn service errors into clear HTTP answers: 400 with a message, 409 on a conflict."""

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from incidents.services import IncidentConflict, IncidentError


def exception_handler(exc, context):
    """DRF's handler, plus the domain errors services raise."""
    if isinstance(exc, IncidentConflict):
        return Response({"detail": str(exc), "code": "conflict"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, IncidentError):
        body = {"detail": str(exc), "code": exc.code}
        if exc.field:
            body[exc.field] = [str(exc)]
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)
