"""API throttles: fixed-window counters in Redis, keyed by user or by config.accounts.client_ip.

Rates are settings (QUELL_THROTTLE_*, docs/configuration.md). Every worker process counts in
the same Redis key (INCRBY and EXPIRE in one pipeline, on a client kept per process), so the
limit holds across processes and hosts. DRF's own SimpleRateThrottle reads, unpickles, appends
to and writes back the list of every request time in the window, which at the API's rate
(6,000 a minute) cost more than the request's queries (docs/benchmarks.md).

A Redis round trip on every request was still a sixth of an incident detail's time, so a
process reserves requests in batches: one INCRBY takes the next `batch` numbers of the window
for this process, and its requests use them up one by one without asking Redis. The batch is
a hundredth of the limit, at most QUELL_THROTTLE_MAX_BATCH (10) and at least 1, so a limit of
a few hundred or less is counted request by request, exactly as before. Numbers a process
reserved and has not used yet count as used for everyone: a client can be refused at most
(processes - 1) x (batch - 1) requests early (1.5 per mille of the default user rate with two
processes), never let through late. A throttled request gets 429 with Retry-After (DRF's
Throttled), the seconds until the window turns; every throttled API answer carries
RateLimit-Limit, -Remaining and -Reset for the tightest throttle (config.api_headers).
"""

from __future__ import annotations

import logging
import math
import threading
import time

import redis
from django.conf import settings
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from config.api_headers import record_rate_limit

from .client_ip import client_ip

log = logging.getLogger(__name__)
# Until when (time.monotonic()) the shared cache is taken as down, after a failure.
_cache_down_until = 0.0
_clients: dict[str, redis.Redis] = {}
_clients_lock = threading.Lock()
# (Redis key) -> [next number to use, last number reserved] of this process's current batch.
_reserved: dict[str, list[int]] = {}
_reserved_lock = threading.Lock()
_MAX_RESERVATIONS = 10_000
DURATIONS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """'1200/minute' -> (1200, 60): requests allowed per window of so many seconds."""
    count, period = rate.split("/")
    return int(count), DURATIONS[period.strip()[0]]


def _redis() -> redis.Redis:
    """One client (and connection pool) per process and cache location, with the cache's
    timeouts: building a redis.Redis per request costs more than the INCR itself."""
    cache = settings.CACHES["default"]
    location = cache["LOCATION"]
    client = _clients.get(location)
    if client is None:
        with _clients_lock:
            client = _clients.get(location) or redis.Redis.from_url(
                location,
                socket_connect_timeout=cache["OPTIONS"]["socket_connect_timeout"],
                socket_timeout=cache["OPTIONS"]["socket_timeout"],
            )
            _clients[location] = client
    return client


def forget_reservations() -> None:
    """Drop this process's unused reservations (the counts in Redis stay as they are)."""
    with _reserved_lock:
        _reserved.clear()


def _take_reserved(key: str) -> int | None:
    """The next number of this process's batch for `key`, or None when the batch is used up."""
    with _reserved_lock:
        batch = _reserved.get(key)
        if batch is None or batch[0] > batch[1]:
            return None
        batch[0] += 1
        return batch[0] - 1


def _keep_reserved(key: str, first_unused: int, last: int, window_start: int) -> None:
    with _reserved_lock:
        if len(_reserved) > _MAX_RESERVATIONS:
            # Batches of windows that have turned are of no use any more. Should the current
            # window alone hold that many, drop them all: a dropped batch only costs its
            # unused numbers (counted as used), never a request let through.
            suffix = f":{window_start}"
            for old in [k for k in _reserved if not k.endswith(suffix)]:
                del _reserved[old]
            if len(_reserved) > _MAX_RESERVATIONS // 2:
                _reserved.clear()
        if first_unused <= last:
            _reserved[key] = [first_unused, last]
        else:
            _reserved.pop(key, None)


class _FixedWindowThrottle(BaseThrottle):
    """Allow `limit` requests per `window` seconds per principal (the subclass says who)."""

    scope = ""

    def __init__(self):
        # Read the rate when the throttle is made (DRF makes one per request), so a changed
        # setting, and a test's override, takes effect.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        self.limit, self.window = parse_rate(rate) if rate else (0, 0)
        self.count = 0
        self.reset_at = 0.0

    def principal(self, request) -> str | None:
        """Whose requests count together; None: this throttle does not apply."""
        raise NotImplementedError

    def allow_request(self, request, view) -> bool:
        global _cache_down_until
        if not self.limit:
            return True
        principal = self.principal(request)
        if principal is None:
            return True
        # A cache outage must neither fail nor hang the API during an incident: the request
        # goes through (logged), like config.accounts.ratelimit. After a failure the cache is
        # left alone for QUELL_BROKER_BACKOFF_S, so requests pay its timeout once per back-off.
        if time.monotonic() < _cache_down_until:
            return True
        now = time.time()
        window_start = int(now // self.window) * self.window
        key = f"quell:throttle:{self.scope}:{principal}:{window_start}"
        number = _take_reserved(key)
        if number is not None:
            self.count = number
        else:
            try:
                self.count = self._reserve(key, window_start)
            except Exception:
                _cache_down_until = time.monotonic() + float(settings.QUELL_BROKER_BACKOFF_S)
                log.warning(
                    "throttle %s not applied: the cache is unreachable", self.scope, exc_info=True
                )
                return True
        self.reset_at = window_start + self.window
        allowed = self.count <= self.limit
        record_rate_limit(
            request._request,
            limit=self.limit,
            remaining=self.remaining,
            reset=max(0, math.ceil(self.reset_at - now)),
        )
        return allowed

    def _reserve(self, key: str, window_start: int) -> int:
        """Reserve the next batch of numbers in Redis; the first one is this request's."""
        batch = max(1, min(int(settings.QUELL_THROTTLE_MAX_BATCH), self.limit // 100))
        pipe = _redis().pipeline(transaction=False)
        pipe.incrby(key, batch)
        pipe.expire(key, self.window + 1, nx=True)
        last, _ = pipe.execute()
        first = last - batch + 1
        if batch > 1:
            _keep_reserved(key, first + 1, last, window_start)
        return first

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def wait(self) -> float:
        """Seconds until the window turns (DRF's Retry-After), at least one."""
        return max(1, math.ceil(self.reset_at - time.time()))


def _user_or_address(request) -> str:
    """The user's id, or the client address for anonymous requests and for principals that
    are not users (the alert webhook's shared secret has no id: its senders are told apart by
    address)."""
    user = request.user
    if user and user.is_authenticated and user.pk is not None:
        return f"user-{user.pk}"
    return client_ip(request)


class AnonThrottle(_FixedWindowThrottle):
    """Requests without credentials, per client address (scope "anon")."""

    scope = "anon"

    def principal(self, request) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return client_ip(request)


class UserThrottle(_FixedWindowThrottle):
    """Signed-in requests per user (scope "user"); anonymous ones per address."""

    scope = "user"

    def principal(self, request) -> str:
        return _user_or_address(request)


class AlertIngestThrottle(_FixedWindowThrottle):
    """Alert webhooks (scope "alerts"), stricter than the API at large: per sending user, or
    per address for senders using the shared webhook secret."""

    scope = "alerts"

    def principal(self, request) -> str:
        return _user_or_address(request)
