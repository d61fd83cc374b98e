"""Serve the public status page from cache before the rest of the middleware stack.

The page is the same for everyone and needs no session, user, CSRF token or message storage,
so running that machinery for it would only cost time: under load it is most of the cost of a
request. Only GET of the three exact public paths takes this path; everything else (and the
views themselves, which stay the reference implementation) goes through the normal stack.
"""

from __future__ import annotations

from . import views

FAST_PATHS = {"/status/": "html", "/status/index.json": "json", "/status/feed.atom": "atom"}


class StatusPageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        kind = FAST_PATHS.get(request.path_info)
        if kind is None or request.method != "GET":
            return self.get_response(request)
        response = views.cached_response(kind, request)
        # What the skipped middleware would have added that matters for a public page.
        response["X-Frame-Options"] = "DENY"
        response["X-Content-Type-Options"] = "nosniff"
        return response
