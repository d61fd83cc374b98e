"""The outbound policy (config/outbound.py): where Quell may connect, for every sender.

Every receiver here is a local server; the policy's own decisions on internal addresses are
tested with the loopback confinement switched off and addresses nobody connects to (the policy
refuses them before any connection).
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comms import transports
from comms.models import Channel
from config import outbound
from diagnostics.target import ConnectionSpec, TargetUnreachable, Timeouts, open_session

INTERNAL_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://127.0.0.1:6379/",
    "http://10.0.0.5/hook",
    "http://192.168.1.10/hook",
    "http://172.16.0.1/hook",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://100.64.0.1/hook",
    "http://224.0.0.1/hook",
    "http://localhost:6379/",  # loopback by definition: refused on save, no lookup
    "http://LocalHost/hook",
    "http://redis.localhost/hook",
]


@pytest.fixture
def open_policy(settings):
    """The production policy: no loopback confinement, http allowed so ranges are what's tested."""
    settings.QUELL_OUTBOUND_CONFINE_TO_LOOPBACK = False
    settings.QUELL_OUTBOUND_ALLOW_HTTP = True
    settings.QUELL_OUTBOUND_ALLOWED_NETWORKS = []
    return settings


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_channel_urls_to_internal_addresses_are_refused_with_a_field_error(
    open_policy, admin_api, url
):
    response = admin_api.post(
        "/api/v1/comms/channels/",
        {"name": "x", "kind": "slack", "audience": "internal", "url": url},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "internal address" in str(response.json()), response.json()
    assert not Channel.objects.exists()


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://hooks.example.com/x", "scheme 'ftp'"),
        ("http://hooks.example.com/x", "Only https"),
        ("https://user:pw@hooks.example.com/x", "Credentials"),
    ],
)
def test_channel_urls_need_https_and_no_credentials(settings, admin_api, url, words):
    settings.QUELL_OUTBOUND_ALLOW_HTTP = False
    response = admin_api.post(
        "/api/v1/comms/channels/",
        {"name": "x", "kind": "slack", "audience": "internal", "url": url},
        format="json",
    )
    assert response.status_code == 400
    assert words in str(response.json())


def test_an_allowed_internal_network_is_accepted(open_policy, admin_api):
    open_policy.QUELL_OUTBOUND_ALLOWED_NETWORKS = ["10.1.2.0/24"]
    response = admin_api.post(
        "/api/v1/comms/channels/",
        {"name": "lan", "kind": "slack", "audience": "internal", "url": "http://10.1.2.7/h"},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_a_name_resolving_to_loopback_is_refused_at_send_time(open_policy, receiver):
    """Names are checked when sending: the receiver on 127.0.0.1 gets nothing via localhost."""
    port = receiver.server.server_address[1]
    with pytest.raises(transports.SendError) as failed:
        transports.send_slack(url=f"http://localhost:{port}/hook", subject="s", body="b")
    assert "internal address" in str(failed.value)
    assert not failed.value.transient
    assert receiver.requests == []
    assert any(host == "localhost" for host, _address, _reason in outbound.refusals)


class _Redirector(BaseHTTPRequestHandler):
    target = ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(302)
        self.send_header("Location", self.target)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_redirects_are_not_followed(receiver):
    _Redirector.target = receiver.url
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        with pytest.raises(transports.SendError) as failed:
            transports.send_slack(url=url, subject="s", body="b")
    finally:
        server.shutdown()
        server.server_close()
    assert failed.value.code == 302
    assert "redirects are not followed" in str(failed.value)
    assert not failed.value.transient
    assert receiver.requests == []  # the redirect's target never heard from Quell


def test_one_deadline_for_a_receiver_that_drips_its_answer(settings):
    """A byte every 0.4 s never trips a per-read timeout; the total deadline still ends it."""
    settings.QUELL_COMMS_HTTP_TIMEOUT = 1.0
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip():
        conn, _ = listener.accept()
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 100:
            if stop.is_set():
                break
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                break
            time.sleep(0.4)
        conn.close()

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(transports.SendError) as failed:
            transports.send_slack(
                url=f"http://127.0.0.1:{listener.getsockname()[1]}/hook", subject="s", body="b"
            )
    finally:
        stop.set()
        listener.close()
    elapsed = time.monotonic() - started
    assert "Timed out after 1s" in str(failed.value)
    assert failed.value.transient
    assert elapsed < 2.0, elapsed


def test_confinement_refuses_every_address_off_this_machine_without_a_lookup(settings, monkeypatch):
    settings.QUELL_OUTBOUND_CONFINE_TO_LOOPBACK = True
    lookups = []
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, *a, **k: lookups.append(host) or real_getaddrinfo(host, *a, **k),
    )
    for url in ("http://10.9.8.7/x", "https://hooks.example.com/x", "http://[2001:db8::1]/x"):
        with pytest.raises(transports.SendError) as failed:
            transports.send_slack(url=url, subject="s", body="b")
        assert "confined to loopback" in str(failed.value)
    assert lookups == []  # not even DNS left the machine


def test_confinement_covers_target_databases(settings, monkeypatch):
    settings.QUELL_OUTBOUND_CONFINE_TO_LOOPBACK = True
    attempts = []
    real_connect = socket.socket.connect
    monkeypatch.setattr(
        socket.socket,
        "connect",
        lambda self, addr: attempts.append(addr) or real_connect(self, addr),
    )
    for host in ("10.20.30.40", "db.internal.example"):
        spec = ConnectionSpec(host=host, port=5432, dbname="shop", user="quell")
        with pytest.raises(TargetUnreachable) as refused, open_session(spec, Timeouts(connect_s=1)):
            pass
        assert "confined to loopback" in str(refused.value)
    assert attempts == []


def test_confinement_lets_loopback_targets_through(settings):
    """The machine's own PostgreSQL is loopback: connecting works under the confinement."""
    settings.QUELL_OUTBOUND_CONFINE_TO_LOOPBACK = True
    spec = ConnectionSpec(host="127.0.0.1", port=5432, dbname="postgres", user="postgres")
    with open_session(spec, Timeouts(connect_s=2)) as session:
        assert session.scalar("SELECT 1") == 1


@pytest.mark.django_db
def test_delivery_excerpts_are_shown_to_admins_only(admin_api, viewer_api, admin_user):
    from comms.models import Delivery

    delivery = Delivery.objects.create(
        kind="test",
        transport="slack",
        body="b",
        destination="https://hooks.example.com/…",
        subject="s",
        response_code=500,
        response_excerpt="internal stack trace of the receiver",
    )
    as_admin = admin_api.get(f"/api/v1/comms/deliveries/{delivery.pk}/").json()
    as_viewer = viewer_api.get(f"/api/v1/comms/deliveries/{delivery.pk}/").json()
    assert as_admin["response_excerpt"] == "internal stack trace of the receiver"
    assert as_viewer["response_excerpt"] is None
