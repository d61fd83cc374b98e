"""Where Quell may connect: the one policy for every outbound connection.

User-supplied URLs (notification channels, signed webhooks) could otherwise point Quell at the
cloud metadata service, the admin port of a neighbour or Quell's own Redis. So an outbound HTTP
request:

- uses https (http only with QUELL_OUTBOUND_ALLOW_HTTP, for labs and tests);
- resolves the host once and checks every address it resolves to: loopback, private,
  link-local, multicast, reserved, unspecified, shared and IPv4-mapped/embedded internal
  addresses are refused unless QUELL_OUTBOUND_ALLOWED_NETWORKS names them (a Mattermost on the
  LAN);
- connects to the address it checked (no second lookup an attacker's DNS could answer
  differently), with the host name kept for the Host header, SNI and certificate check;
- follows no redirect;
- finishes within one total deadline, however slowly the receiver drips its answer.

QUELL_OUTBOUND_CONFINE_TO_LOOPBACK narrows everything (HTTP, target databases, mail) to
127.0.0.0/8 and ::1: the test suite and the API fuzzing run under it, so no generated address
can reach beyond the machine. Every refusal is logged on the "quell.outbound" logger and kept in
`refusals` (bounded) so a test can assert what was attempted.
"""

from __future__ import annotations

import collections
import contextlib
import http.client
import ipaddress
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

logger = logging.getLogger("quell.outbound")

# The last refusals of this process, newest last: (host, address or "", reason).
refusals: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=1000)

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class OutboundRefused(Exception):
    """The policy refuses this destination; the message says why, for the user."""


@dataclass(frozen=True)
class Response:
    status: int
    reason: str
    excerpt: str


def _refuse(host: str, address: str, reason: str) -> OutboundRefused:
    refusals.append((host, address, reason))
    logger.warning("outbound connection refused: host=%s address=%s: %s", host, address, reason)
    return OutboundRefused(reason)


def confined_to_loopback() -> bool:
    return bool(getattr(settings, "QUELL_OUTBOUND_CONFINE_TO_LOOPBACK", False))


def _allowed_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    networks = []
    for entry in getattr(settings, "QUELL_OUTBOUND_ALLOWED_NETWORKS", []) or []:
        networks.append(ipaddress.ip_network(str(entry).strip(), strict=False))
    return networks


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64), if any."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return address.ipv4_mapped
        if address.sixtofour:
            return address.sixtofour
        if address in ipaddress.ip_network("64:ff9b::/96"):
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def internal_reason(address: Address) -> str:
    """Why an address is internal ("" when it is a public address)."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = internal_reason(embedded)
        return f"{reason} (embedded in {address})" if reason else ""
    for attribute, word in (
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_private", "private"),
        ("is_multicast", "multicast"),
        ("is_unspecified", "unspecified"),
        ("is_reserved", "reserved"),
    ):
        if getattr(address, attribute):
            return f"{address} is a {word} address"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network(
        "100.64.0.0/10"
    ):
        return f"{address} is a shared (carrier-grade NAT) address"
    if not address.is_global:
        return f"{address} is not a public address"
    return ""


def check_address(host: str, address: Address) -> None:
    """Raise OutboundRefused unless the policy lets Quell connect to this address."""
    if confined_to_loopback():
        if not address.is_loopback:
            raise _refuse(
                host,
                str(address),
                f"{host} ({address}) is outside this machine, and outbound connections are "
                "confined to loopback (QUELL_OUTBOUND_CONFINE_TO_LOOPBACK)",
            )
        return
    if any(address in network for network in _allowed_networks()):
        return
    reason = internal_reason(address)
    if reason:
        raise _refuse(
            host,
            str(address),
            f"{host} resolves to an internal address ({reason}); add it to "
            "QUELL_OUTBOUND_ALLOWED_NETWORKS to allow an internal receiver",
        )


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to, each checked; OutboundRefused if any is refused."""
    if not host:
        raise _refuse(host, "", "the address has no host")
    literal = _literal(host)
    if literal is not None:
        check_address(host, literal)
        return [literal]
    if confined_to_loopback() and host.lower().rstrip(".") != "localhost":
        # No lookup at all: even a DNS query for a generated name would leave the machine.
        raise _refuse(
            host,
            "",
            f"{host} is not a loopback address, and outbound connections are confined to "
            "loopback (QUELL_OUTBOUND_CONFINE_TO_LOOPBACK)",
        )
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OutboundRefused(f"{host} does not resolve ({exc})") from None
    addresses: list[Address] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    # All of them, not the first: a name with one public and one internal address is refused.
    for address in addresses:
        check_address(host, address)
    return addresses


def check_database_host(host: str, port: int) -> str | None:
    """The address to connect a target database to, checked (None: a Unix socket path).

    Target databases normally live on private networks, so only the loopback confinement applies
    to them; the address is pinned (psycopg's hostaddr) so the check and the connection agree.
    """
    if not confined_to_loopback():
        return None
    hosts = [h for h in (host or "").split(",") if h]
    if not hosts or all(h.startswith("/") for h in hosts):
        return None  # Unix sockets are on this machine
    pinned = []
    for one in hosts:
        pinned.append(str(resolve(one, port)[0]))
    return ",".join(pinned)


def validate_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an outbound URL the policy accepts; OutboundRefused otherwise.

    Used when a channel is saved (a form or API error) and again before every request (the
    host may resolve elsewhere by then).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise OutboundRefused(f"Not a valid URL: {exc}") from None
    scheme = (parts.scheme or "").lower()
    allowed = {"https"} | ({"http"} if settings.QUELL_OUTBOUND_ALLOW_HTTP else set())
    if scheme not in allowed:
        if scheme == "http":
            raise _refuse(
                parts.hostname or "",
                "",
                "Only https URLs are allowed (QUELL_OUTBOUND_ALLOW_HTTP allows http in labs)",
            )
        raise _refuse(parts.hostname or "", "", f"The scheme {scheme or '(none)'!r} is not allowed")
    if parts.username or parts.password:
        raise OutboundRefused("Credentials in the URL are not allowed; use the channel's secret")
    host = parts.hostname or ""
    if not host:
        raise _refuse("", "", "The URL has no host")
    return scheme, host, port or (443 if scheme == "https" else 80)


def validate_destination(url: str) -> None:
    """Check a URL when it is saved: scheme and, for an address written as an IP or a name that
    is loopback by definition (localhost), the address.

    Other names are not looked up here (they are resolved and checked before every request), so
    saving a channel sends no DNS query.
    """
    _scheme, host, _port = validate_url(url)
    literal = _literal(host)
    if literal is None and _is_localhost_name(host):
        literal = ipaddress.ip_address("127.0.0.1")  # loopback by definition, no lookup needed
    if literal is not None:
        check_address(host, literal)


def _is_localhost_name(host: str) -> bool:
    """`localhost` and names under it, which always mean this machine (RFC 6761, 6.3)."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout)
        self._address = address

    def connect(self):
        self.sock = socket.create_connection((str(self._address), self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host, port, address, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._address = address

    def connect(self):
        sock = socket.create_connection((str(self._address), self.port), self.timeout)
        # SNI and the certificate check use the name, the socket the checked address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(
    url: str, body: bytes, headers: dict[str, str], *, timeout: float, excerpt_chars: int = 500
) -> Response:
    """POST under the policy: checked address, no redirects, one deadline for the whole request.

    Raises OutboundRefused for a destination the policy refuses, TimeoutError past the deadline
    and OSError for connection failures. Redirects come back as their 3xx response.
    """
    scheme, host, port = validate_url(url)
    address = resolve(host, port)[0]
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    connection_class = _PinnedHTTPSConnection if scheme == "https" else _PinnedHTTPConnection
    connection = connection_class(host, port, address, timeout)
    deadline_passed = threading.Event()

    def cut() -> None:
        # A receiver dripping a byte at a time never trips a per-read timeout: at the deadline
        # the socket is shut down, which ends whatever read or write is in progress.
        deadline_passed.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    started = time.monotonic()
    timer.start()
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        raw = response.read(excerpt_chars)
        if deadline_passed.is_set():
            raise TimeoutError(f"Timed out after {timeout:g}s")
        return Response(
            status=response.status,
            reason=response.reason or "",
            excerpt=raw.decode("utf-8", "replace"),
        )
    except (OSError, http.client.HTTPException) as exc:
        if deadline_passed.is_set() or time.monotonic() - started >= timeout:
            raise TimeoutError(f"Timed out after {timeout:g}s") from None
        if isinstance(exc, http.client.HTTPException):
            raise ConnectionError(f"bad HTTP answer: {exc!r}") from None
        raise
    finally:
        timer.cancel()
        connection.close()
