"""A guard that keeps a test's outbound connections on this machine, and records every attempt.

The API fuzz makes up hosts, ports and URLs for targets, channels and webhooks, then asks Quell
to connect to them (test connection, runs, channel tests, deliveries). Whatever setting the
application has for that, the fuzz keeps its own belt and braces: for its duration every
connection through Python's sockets and every libpq connection (psycopg connects in C, below
Python's socket module) is checked, and one to anything but a loopback address or a local Unix
socket is refused and recorded. Name lookups are refused too unless the name is an IP literal or
"localhost": resolving a made-up name would already send a DNS query off the machine.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from dataclasses import dataclass, field

import psycopg
from psycopg import conninfo as pg_conninfo

LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


class OutboundRefused(OSError):
    """Raised in place of a connection the guard does not allow (an OSError, as a refusal is)."""


def is_loopback(host: str) -> bool:
    """An IP literal in 127.0.0.0/8 or ::1, or a name that always means this machine."""
    host = (host or "").strip().strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass
class OutboundRecord:
    """What was attempted: (kind, destination) pairs, allowed and refused apart."""

    allowed: list[tuple[str, str]] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)

    def check(self, kind: str, host: str, port: object = "") -> None:
        destination = f"{host}:{port}" if port != "" else str(host)
        if is_loopback(str(host)):
            self.allowed.append((kind, destination))
            return
        self.refused.append((kind, destination))
        raise OutboundRefused(f"outbound guard: {kind} to {destination} refused (not loopback)")

    def non_loopback_attempts(self) -> list[tuple[str, str]]:
        return list(self.refused)


def _libpq_hosts(conninfo: str, kwargs: dict) -> list[tuple[str, str]]:
    """(host, port) pairs a libpq connection string would try; Unix socket directories are local."""
    params = pg_conninfo.conninfo_to_dict(conninfo, **kwargs)
    hosts = str(params.get("hostaddr") or params.get("host") or "").split(",")
    ports = str(params.get("port") or "").split(",")
    pairs = []
    for index, host in enumerate(hosts):
        host = host.strip()
        if not host or host.startswith("/") or host.startswith("@"):
            continue  # Unix-domain socket (or libpq's default, which is one): never leaves.
        port = ports[index] if index < len(ports) else (ports[0] if ports else "")
        pairs.append((host, port))
    return pairs


@contextlib.contextmanager
def confine_outbound_to_loopback():
    """Patch socket connect/lookup and psycopg connect for the duration; yield the record."""
    record = OutboundRecord()
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_create_connection = socket.create_connection
    real_getaddrinfo = socket.getaddrinfo
    real_pg_connect = psycopg.Connection.connect.__func__

    def _check_address(kind: str, sock: socket.socket, address) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            record.check(kind, address[0], address[1])

    def connect(sock, address):
        _check_address("socket.connect", sock, address)
        return real_connect(sock, address)

    def connect_ex(sock, address):
        _check_address("socket.connect_ex", sock, address)
        return real_connect_ex(sock, address)

    def create_connection(address, *args, **kwargs):
        record.check("socket.create_connection", address[0], address[1])
        return real_create_connection(address, *args, **kwargs)

    def getaddrinfo(host, port, *args, **kwargs):
        if host is not None:
            text = host.decode() if isinstance(host, bytes) else str(host)
            if not _is_ip_literal(text):
                record.check("getaddrinfo", text, port if port is not None else "")
        return real_getaddrinfo(host, port, *args, **kwargs)

    def pg_connect(cls, conninfo: str = "", **kwargs):
        for host, port in _libpq_hosts(conninfo, {k: v for k, v in kwargs.items() if k in _PG}):
            record.check("libpq", host, port)
        return real_pg_connect(cls, conninfo, **kwargs)

    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.create_connection = create_connection
    socket.getaddrinfo = getaddrinfo
    psycopg.Connection.connect = classmethod(pg_connect)
    try:
        yield record
    finally:
        socket.socket.connect = real_connect
        socket.socket.connect_ex = real_connect_ex
        socket.create_connection = real_create_connection
        socket.getaddrinfo = real_getaddrinfo
        psycopg.Connection.connect = classmethod(real_pg_connect)


# Keyword arguments of psycopg.Connection.connect that are connection parameters, not options.
_PG = {"host", "hostaddr", "port", "dbname", "user", "password", "sslmode", "connect_timeout"}
