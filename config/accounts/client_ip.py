"""The client's address, for lockouts and rate limits (django-axes, DRF throttles, the status
page's subscription form): one function, so every limit counts the same address.

Behind a reverse proxy REMOTE_ADDR is the proxy, so limiting by it would lock everybody out at
once. The proxy's header (QUELL_CLIENT_IP_HEADER, e.g. X-Forwarded-For) is trusted only as far
as QUELL_TRUSTED_PROXY_COUNT proxies (0: none, the default) append to it: each appends the
address it was connected from, so the client is the entry the outermost trusted proxy wrote,
counted from the right.
Entries further left are whatever the client sent and are never used.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def _valid(address: str) -> str | None:
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError:
        return None


def client_ip(request) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    header = settings.QUELL_CLIENT_IP_HEADER
    proxies = settings.QUELL_TRUSTED_PROXY_COUNT
    if not header or proxies <= 0:
        return remote
    meta_key = "HTTP_" + header.upper().replace("-", "_")
    entries = [e.strip() for e in request.META.get(meta_key, "").split(",") if e.strip()]
    if len(entries) < proxies:
        # Not the path through our proxies (a direct connection): the peer is the client.
        return remote
    return _valid(entries[-proxies]) or remote
