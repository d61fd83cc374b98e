"""Headers every response carries, and those the API adds (docs/api.md#headers).

X-Request-ID  echoed when the client sends a usable one (1 to 128 of A-Z a-z 0-9 and . _ : -),
              otherwise generated; on every response, and in every log record written while
              the request runs (RequestIdLogFilter, settings LOGGING), so a client's report
              and the server's log lines can be matched.
Location      on API responses, made absolute (views name routes; config.kernel.headers).
RateLimit-*   Limit, Remaining and Reset (IETF draft names) from the DRF throttle closest to
              its limit for this request (config.accounts.throttles records it); on a 429 DRF
              adds Retry-After.
"""

from __future__ import annotations

import contextvars
import logging
import re
import uuid

from django.core.signals import request_finished
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# The id of the request this thread (or task) is serving, for log records.
current_request_id: contextvars.ContextVar[str] = contextvars.ContextVar(
    "quell_request_id", default="-"
)
RATE_LIMIT_ATTRIBUTE = "quell_rate_limit"


def request_id_for(request: HttpRequest) -> str:
    sent = request.headers.get(REQUEST_ID_HEADER, "")
    return sent if _REQUEST_ID.match(sent) else uuid.uuid4().hex


def record_rate_limit(request: HttpRequest, *, limit: int, remaining: int, reset: int) -> None:
    """Keep the tightest throttle's numbers for the response headers (called by the throttles)."""
    current = getattr(request, RATE_LIMIT_ATTRIBUTE, None)
    if current is None or remaining < current[1]:
        setattr(request, RATE_LIMIT_ATTRIBUTE, (limit, max(0, remaining), max(0, reset)))


class ApiHeadersMiddleware:
    """First in MIDDLEWARE, so even answers given by other middleware carry the request id."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_for(request)
        request.request_id = request_id
        # Cleared when the response is finished (below), not here: Django logs a 4xx or 5xx
        # ("Not Found: ...") after the middleware returns, and that line needs the id too.
        current_request_id.set(request_id)
        response = self.get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        if request.path_info.startswith("/api/"):
            self._api_headers(request, response)
        return response

    @staticmethod
    def _api_headers(request: HttpRequest, response: HttpResponse) -> None:
        where = response.get("Location")
        if where and where.startswith("/"):
            response["Location"] = request.build_absolute_uri(where)
        numbers = getattr(request, RATE_LIMIT_ATTRIBUTE, None)
        if numbers is not None:
            limit, remaining, reset = numbers
            response["RateLimit-Limit"] = str(limit)
            response["RateLimit-Remaining"] = str(remaining)
            response["RateLimit-Reset"] = str(reset)


class RequestIdLogFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request) for the log format."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


@receiver(request_finished, dispatch_uid="quell-clear-request-id")
def _clear_request_id(**kwargs) -> None:
    current_request_id.set("-")
