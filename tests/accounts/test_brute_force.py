"""Brute force: sign-in lockout (web and admin), password reset limits, API throttles."""

import pytest
from django.core import mail
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config.accounts.client_ip import client_ip
from tests.factories import UserFactory, api_token_for, forget_throttle_counts, fresh_client_ip

PASSWORD = "pw-for-tests"


@pytest.fixture
def alice(db):
    return UserFactory(username="alice", role="responder", email="alice@example.com", is_staff=True)


@pytest.mark.parametrize("login_url", ["/accounts/login/", "/admin/login/"])
def test_repeated_wrong_passwords_lock_the_sign_in(alice, settings, login_url):
    settings.AXES_FAILURE_LIMIT = 5
    client = Client(REMOTE_ADDR=fresh_client_ip())
    codes = [
        client.post(login_url, {"username": "alice", "password": f"guess-{n}"}).status_code
        for n in range(25)
    ]
    # Wrong passwords redisplay the form (200) until the limit; then 429, whatever is sent.
    assert codes[:4] == [200] * 4
    assert set(codes[5:]) == {429}
    locked = client.post(login_url, {"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert int(locked["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert b"Too many failed sign-ins" in locked.content
    assert "_auth_user_id" not in client.session

    # The lock is for this account from this address: alice elsewhere still signs in.
    elsewhere = Client(REMOTE_ADDR=fresh_client_ip())
    response = elsewhere.post(login_url, {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302


def test_a_correct_password_before_the_limit_resets_the_count(alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR=fresh_client_ip())
    for n in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": f"x{n}"})
    assert (
        client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 302
    )
    client.post("/accounts/logout/")
    for n in range(2):
        client.post("/accounts/login/", {"username": "alice", "password": f"y{n}"})
    assert (
        client.post("/accounts/login/", {"username": "alice", "password": PASSWORD}).status_code
        == 302
    )


def test_password_reset_is_limited_per_address(alice, settings):
    settings.QUELL_PASSWORD_RESET_PER_HOUR_PER_ADDRESS = 3
    settings.QUELL_PASSWORD_RESET_PER_HOUR_PER_ACCOUNT = 100
    client = Client(REMOTE_ADDR=fresh_client_ip())
    responses = [
        client.post("/accounts/password_reset/", {"email": f"someone-{n}@example.com"})
        for n in range(25)
    ]
    assert [r.status_code for r in responses[:3]] == [302] * 3
    assert {r.status_code for r in responses[3:]} == {429}
    assert 0 < int(responses[-1]["Retry-After"]) <= 3600


def test_password_reset_is_limited_per_account_without_telling(alice, settings):
    settings.QUELL_PASSWORD_RESET_PER_HOUR_PER_ADDRESS = 100
    settings.QUELL_PASSWORD_RESET_PER_HOUR_PER_ACCOUNT = 2
    # A fresh account address each run: the count lives in the shared cache.
    alice.email = f"alice-{fresh_client_ip().replace(':', '')}@example.com"
    alice.save()
    for _ in range(6):
        # From many addresses: the account limit holds across them.
        response = Client(REMOTE_ADDR=fresh_client_ip()).post(
            "/accounts/password_reset/", {"email": alice.email.upper()}
        )
        # Always the same answer, so the page does not reveal the account or the limit.
        assert response.status_code == 302
        assert response["Location"] == "/accounts/password_reset/done/"
    assert len(mail.outbox) == 2


def test_api_throttles_answer_429_with_retry_after(alice, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "3/minute", "user": "4/minute", "alerts": "2/minute"},
    }
    # Guessing tokens: failed attempts from one address count against the "anon" rate.
    guesser = APIClient(REMOTE_ADDR=fresh_client_ip())
    codes = []
    for n in range(25):
        guesser.credentials(HTTP_AUTHORIZATION=f"Token guess-{n}")
        codes.append(guesser.get("/api/v1/incidents/").status_code)
    assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}
    throttled = guesser.get("/api/v1/incidents/")
    assert throttled.status_code == 429 and 0 < int(throttled["Retry-After"]) <= 60

    # Per user, whatever address the requests come from. User ids repeat across test databases,
    # so forget any count an earlier run left in the shared cache for this one.
    forget_throttle_counts(alice)
    secret = api_token_for(alice)
    codes = []
    for _ in range(5):
        client = APIClient(REMOTE_ADDR=fresh_client_ip())
        client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        codes.append(client.get("/api/v1/incidents/").status_code)
    assert codes == [200, 200, 200, 200, 429]


def test_alert_ingestion_has_its_own_stricter_scope(db, settings):
    settings.QUELL_ALERT_WEBHOOK_TOKEN = "alert-secret"
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "anon": "1000/minute",
            "user": "1000/minute",
            "alerts": "2/minute",
        },
    }
    sender = APIClient(REMOTE_ADDR=fresh_client_ip())
    sender.credentials(HTTP_AUTHORIZATION="Bearer alert-secret")
    body = {"title": "disk", "status": "firing"}
    codes = [
        sender.post("/api/v1/alerts/webhook/", body, format="json").status_code for _ in range(3)
    ]
    assert codes[2] == 429 and codes[0] != 429 and codes[1] != 429
    # Shared-secret senders have no user id: another sender (address) has its own count.
    other = APIClient(REMOTE_ADDR=fresh_client_ip())
    other.credentials(HTTP_AUTHORIZATION="Bearer alert-secret")
    assert other.post("/api/v1/alerts/webhook/", body, format="json").status_code != 429


@pytest.mark.parametrize(
    ("count", "remote", "forwarded", "expected"),
    [
        (0, "10.0.0.1", "203.0.113.9", "10.0.0.1"),  # no proxy declared: the header is ignored
        (1, "10.0.0.1", "203.0.113.9", "203.0.113.9"),
        (1, "10.0.0.1", "198.51.100.7, 203.0.113.9", "203.0.113.9"),  # spoofed entry ignored
        (2, "10.0.0.1", "198.51.100.7, 203.0.113.9, 10.0.0.2", "203.0.113.9"),
        (2, "10.0.0.1", "203.0.113.9", "10.0.0.1"),  # fewer entries than proxies: not via them
        (1, "10.0.0.1", "not-an-address", "10.0.0.1"),
        (1, "10.0.0.1", "", "10.0.0.1"),
    ],
)
def test_client_ip_trusts_only_the_declared_proxies(settings, count, remote, forwarded, expected):
    settings.QUELL_TRUSTED_PROXY_COUNT = count
    settings.QUELL_CLIENT_IP_HEADER = "X-Forwarded-For"
    request = RequestFactory().get("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_lockout_counts_the_client_behind_the_proxy(alice, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.QUELL_TRUSTED_PROXY_COUNT = 1
    proxy = fresh_client_ip()
    attacker, responder = fresh_client_ip(), fresh_client_ip()

    def login(ip, password):
        return (
            Client(REMOTE_ADDR=proxy)
            .post(
                "/accounts/login/",
                {"username": "alice", "password": password},
                HTTP_X_FORWARDED_FOR=ip,
            )
            .status_code
        )

    assert [login(attacker, f"g{n}") for n in range(4)][-1] == 429
    # The same proxy, another client: not locked out.
    assert login(responder, PASSWORD) == 302
