"""Fixtures for comms tests: a local HTTP receiver and SMTP server, channels, incidents."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comms import status_cache
from comms.models import Channel
from incidents import services as incident_services


@pytest.fixture(autouse=True)
def _fresh_status_cache(settings):
    """Each test starts with an empty status page cache and short receiver timeouts."""
    settings.QUELL_COMMS_HTTP_TIMEOUT = 0.5
    settings.QUELL_COMMS_RETRY_BASE_SECONDS = 30
    settings.QUELL_BASE_URL = "http://status.test"
    # The per-client limit lives in Redis across runs; its own test turns it on.
    settings.QUELL_STATUS_SUBSCRIBE_PER_HOUR = 0
    status_cache.invalidate()
    yield
    status_cache.invalidate()


class Receiver:
    """A local HTTP server recording what it receives.

    `script` is a list of behaviours consumed one per request: an int status code, or
    ("hang", seconds). When the script runs out it answers 200.
    """

    def __init__(self):
        self.requests: list[dict] = []
        self.script: list = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        {
                            "path": self.path,
                            "headers": dict(self.headers),
                            "body": body,
                            "time": time.monotonic(),
                        }
                    )
                    step = receiver.script.pop(0) if receiver.script else 200
                if isinstance(step, tuple) and step[0] == "hang":
                    time.sleep(step[1])
                    step = 200
                try:
                    self.send_response(step)
                    self.send_header("Content-Type", "text/plain")
                    self.end_headers()
                    self.wfile.write(b"ok" if step < 400 else b"receiver says no")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/hook"

    def json_bodies(self) -> list[dict]:
        return [json.loads(r["body"]) for r in self.requests]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp_server(settings):
    """aiosmtpd on a free local port; Django's SMTP backend pointed at it."""
    from aiosmtpd.controller import Controller

    class Handler:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(
                {
                    "from": envelope.mail_from,
                    "to": list(envelope.rcpt_tos),
                    "data": envelope.content.decode("utf8", errors="replace"),
                }
            )
            return "250 Message accepted for delivery"

    handler = Handler()
    # The controller probes its own port after starting, so it needs a real one up front.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = port
    settings.EMAIL_USE_TLS = False
    yield handler
    controller.stop()


@pytest.fixture
def incident_factory(responder):
    """Declare an incident through the service (timeline included)."""

    def make(severity="SEV2", **kwargs):
        kwargs.setdefault("title", f"Checkout database slow ({severity})")
        return incident_services.incident_declare(severity=severity, actor=responder, **kwargs)

    return make


@pytest.fixture
def slack_channel(receiver):
    return Channel.objects.create(
        name="ops-slack", kind="slack", audience="internal", url=receiver.url
    )


@pytest.fixture
def webhook_channel(receiver):
    return Channel.objects.create(
        name="signed-hook",
        kind="webhook",
        audience="all",
        url=receiver.url,
        signing_secret="s3cret-key",
    )
