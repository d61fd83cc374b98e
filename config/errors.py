"""Error pages: JSON under /api/ (clients parse it; no HTML page), Django's pages elsewhere."""

from __future__ import annotations

from django.http import JsonResponse
from django.views import defaults

from config.kernel.api import error_body


def _is_api(request) -> bool:
    return request.path_info.startswith("/api/")


def page_not_found(request, exception):
    if _is_api(request):
        return JsonResponse(
            error_body("No such route or object: see /api/v1/docs/.", "not_found"), status=404
        )
    return defaults.page_not_found(request, exception)


def server_error(request):
    if _is_api(request):
        return JsonResponse(
            error_body("Quell failed to answer this request; it has been logged.", "error"),
            status=500,
        )
    return defaults.server_error(request)
