"""Error responses the API documents (drf-spectacular), shared by every app's views."""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """The error envelope (config.kernel.api): detail, code, errors."""

    detail = serializers.CharField()
    code = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


DESCRIPTIONS = {
    400: "Invalid input: `errors` names each field at fault.",
    401: "Not authenticated.",
    403: "Your role does not allow this.",
    404: "Not found.",
    409: "Somebody else changed it first: re-read it and decide again.",
}


def errors(*codes: int, **descriptions: str) -> dict[int, OpenApiResponse]:
    """Error responses for `extend_schema(responses=...)`: 400, 401, 403 and 404 unless `codes`
    name others; `descriptions` ("e404"="No such incident.") say more for one view."""
    wanted = codes or (400, 401, 403, 404)
    extra = {int(key.lstrip("e")): text for key, text in descriptions.items()}
    return {
        code: OpenApiResponse(
            ErrorSerializer,
            description=extra.get(code) or DESCRIPTIONS.get(code, ""),
        )
        for code in sorted(set(wanted) | set(extra))
    }


ERRORS = errors()
CONFLICT = errors(409)
