"""DRF throttles keyed by config.accounts.client_ip (the trusted proxy header, not the proxy).

Rates are settings (QUELL_THROTTLE_*, docs/configuration.md); counts live in the shared cache
(Redis), so every worker process counts the same requests. A throttled request gets 429 with
Retry-After (DRF's Throttled); every throttled API answer carries RateLimit-Limit, -Remaining
and -Reset for the tightest throttle (config.api_headers).
"""

import logging
import math
import time

from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle, UserRateThrottle

from config.api_headers import record_rate_limit

from .client_ip import client_ip

log = logging.getLogger(__name__)
# Until when (time.monotonic()) the shared cache is taken as down, after a failure.
_cache_down_until = 0.0


class _ClientIpMixin:
    def allow_request(self, request, view):
        # The counts live in the shared cache. When it is unreachable the request goes through
        # (logged), like config.accounts.ratelimit: a cache outage must neither fail nor hang
        # the API during an incident. After a failure the cache is left alone for
        # QUELL_BROKER_BACKOFF_S, so requests pay the cache's timeout once per back-off.
        global _cache_down_until
        if time.monotonic() < _cache_down_until:
            return True
        try:
            allowed = super().allow_request(request, view)
        except Exception:
            _cache_down_until = time.monotonic() + float(settings.QUELL_BROKER_BACKOFF_S)
            log.warning(
                "throttle %s not applied: the cache is unreachable", self.scope, exc_info=True
            )
            return True
        self._record_headers(request, allowed)
        return allowed

    def _record_headers(self, request, allowed: bool) -> None:
        """RateLimit-* numbers for the response (config.api_headers): this throttle's limit,
        what is left of it, and the seconds until its oldest counted request leaves the window."""
        history = getattr(self, "history", None)
        if self.rate is None or history is None or not hasattr(self, "now"):
            return  # no rate for this scope, or no key (the throttle does not apply)
        remaining = self.num_requests - len(history) if allowed else 0
        reset = self.duration - (self.now - history[-1]) if history else self.duration
        record_rate_limit(
            request._request, limit=self.num_requests, remaining=remaining, reset=math.ceil(reset)
        )

    def get_ident(self, request):
        return client_ip(request)

    def principal(self, request) -> str:
        """The user's id, or the client address for anonymous requests and for principals that
        are not users (the alert webhook's shared secret has no id: its senders are told apart
        by address)."""
        user = request.user
        if user and user.is_authenticated and user.pk is not None:
            return f"user-{user.pk}"
        return self.get_ident(request)

    def get_rate(self):
        # DRF binds the rates once, at import; read them when the throttle is made, so a
        # changed setting (and a test's override) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_ClientIpMixin, AnonRateThrottle):
    """Requests without credentials, per client address (scope "anon")."""


class UserThrottle(_ClientIpMixin, UserRateThrottle):
    """Signed-in requests per user (scope "user"); anonymous ones per address."""

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.principal(request)}


class AlertIngestThrottle(_ClientIpMixin, SimpleRateThrottle):
    """Alert webhooks (scope "alerts"), stricter than the API at large: per sending user, or
    per address for senders using the shared webhook secret."""

    scope = "alerts"

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.principal(request)}
