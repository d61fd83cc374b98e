"""Fixed-window counters in the shared cache, for limits outside DRF (password reset, the
public subscription form). DRF's own throttles (config.accounts.throttles) use the same cache."""

from __future__ import annotations

import hashlib
import logging
import time

from django.core.cache import cache

log = logging.getLogger(__name__)


def hit(scope: str, ident: str, *, limit: int, window_s: int) -> int | None:
    """Count one request of `ident` in `scope`. Returns None while within `limit` per window,
    else the seconds until the window ends (for Retry-After). limit 0 means no limit.

    If the cache is unreachable the request is let through (logged): a cache outage must not
    lock responders out of Quell during an incident.
    """
    if not limit:
        return None
    now = time.time()
    window = int(now // window_s)
    digest = hashlib.sha256(ident.encode()).hexdigest()[:32]
    key = f"ratelimit:{scope}:{digest}:{window}"
    try:
        cache.add(key, 0, timeout=window_s + 1)
        count = cache.incr(key)
    except Exception:
        log.warning("rate limit %s not applied: the cache is unreachable", scope, exc_info=True)
        return None
    if count <= limit:
        return None
    return max(1, int((window + 1) * window_s - now))
