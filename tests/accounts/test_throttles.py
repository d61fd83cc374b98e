"""The API throttles: fixed windows counted in the shared Redis, failing open when it is down."""

import socket
import threading
import time

import pytest
from rest_framework.test import APIClient

from config.accounts import throttles
from tests.factories import UserFactory, api_token_for, forget_throttle_counts, fresh_client_ip

pytestmark = pytest.mark.django_db


def token_of_new_viewer() -> str:
    user = UserFactory(role="viewer")
    forget_throttle_counts(user)
    return api_token_for(user)


@pytest.fixture
def user_rate(settings):
    def set_rate(rate: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": "100/minute", "user": rate, "alerts": "2/minute"},
        }

    return set_rate


def test_parse_rate_reads_drf_rate_strings():
    assert throttles.parse_rate("6000/minute") == (6000, 60)
    assert throttles.parse_rate("5/s") == (5, 1)
    assert throttles.parse_rate("10/hour") == (10, 3600)
    assert throttles.parse_rate("1/day") == (1, 86400)


def test_the_count_starts_again_when_the_window_turns(user_rate):
    user_rate("2/second")
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_of_new_viewer()}")
    # Start just after a window turned, so three requests fall in one window.
    time.sleep(1 - time.time() % 1 + 0.01)
    codes = [client.get("/api/v1/incidents/").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    time.sleep(1 - time.time() % 1 + 0.01)
    assert client.get("/api/v1/incidents/").status_code == 200


def test_retry_after_is_the_time_left_in_the_window(user_rate):
    user_rate("1/hour")
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_of_new_viewer()}")
    assert client.get("/api/v1/incidents/").status_code == 200
    refused = client.get("/api/v1/incidents/")
    assert refused.status_code == 429
    left = 3600 - time.time() % 3600
    assert abs(int(refused["Retry-After"]) - left) <= 2


def test_one_users_requests_count_together_from_any_address(user_rate):
    user_rate("3/hour")
    secret = token_of_new_viewer()
    codes = []
    for _ in range(4):
        client = APIClient(REMOTE_ADDR=fresh_client_ip())
        client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
        codes.append(client.get("/api/v1/incidents/").status_code)
    assert codes == [200, 200, 200, 429]
    # Another user has a count of their own.
    other = APIClient(REMOTE_ADDR=fresh_client_ip())
    other.credentials(HTTP_AUTHORIZATION=f"Token {token_of_new_viewer()}")
    assert other.get("/api/v1/incidents/").status_code == 200


@pytest.fixture
def silent_redis():
    """A socket that accepts connections and never answers: a stalled Redis."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_stalled_cache_lets_requests_through_once_per_back_off(
    settings, user_rate, silent_redis, monkeypatch
):
    user_rate("1/hour")
    secret = token_of_new_viewer()
    settings.CACHES = {
        **settings.CACHES,
        "default": {
            **settings.CACHES["default"],
            "LOCATION": silent_redis,
            "OPTIONS": {"socket_connect_timeout": 0.3, "socket_timeout": 0.3},
        },
    }
    settings.QUELL_BROKER_BACKOFF_S = 30
    monkeypatch.setattr(throttles, "_cache_down_until", 0.0)
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    started = time.monotonic()
    codes = [client.get("/api/v1/incidents/").status_code for _ in range(5)]
    elapsed = time.monotonic() - started
    # Not throttled (the count cannot be read), and only the first request waited for Redis.
    assert codes == [200] * 5
    assert elapsed < 0.3 + 1.5
    assert throttles._cache_down_until > time.monotonic()


def _viewer_with_token():
    user = UserFactory(role="viewer")
    forget_throttle_counts(user)
    return user, api_token_for(user)


def _count_in_redis(user, window_s: int) -> int:
    window_start = int(time.time() // window_s) * window_s
    value = throttles._redis().get(f"quell:throttle:user:user-{user.pk}:{window_start}")
    return int(value or 0)


def test_a_high_rate_is_reserved_in_batches_and_counted_request_by_request(user_rate):
    user_rate("1000/hour")  # a batch of 10 per Redis round trip
    user, secret = _viewer_with_token()
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")

    answers = [client.get("/api/v1/incidents/") for _ in range(25)]

    assert {a.status_code for a in answers} == {200}
    assert [int(a["RateLimit-Remaining"]) for a in answers] == list(range(999, 974, -1))
    assert _count_in_redis(user, 3600) == 30  # three batches reserved for 25 requests


def test_another_processs_unused_reservation_counts_as_used(user_rate):
    user_rate("1000/hour")
    user, secret = _viewer_with_token()
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")

    assert client.get("/api/v1/incidents/")["RateLimit-Remaining"] == "999"
    throttles.forget_reservations()  # what another process sees: its own batch comes next
    assert client.get("/api/v1/incidents/")["RateLimit-Remaining"] == "989"
    assert _count_in_redis(user, 3600) == 20


def test_a_batch_past_the_limit_refuses_without_asking_redis_again(user_rate):
    user_rate("300/hour")  # batches of 3
    user, secret = _viewer_with_token()
    window_start = int(time.time() // 3600) * 3600
    throttles._redis().set(f"quell:throttle:user:user-{user.pk}:{window_start}", 298, ex=3700)
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")

    codes = [client.get("/api/v1/incidents/").status_code for _ in range(3)]

    assert codes == [200, 200, 429]  # numbers 299 and 300 of 300, then 301
    assert _count_in_redis(user, 3600) == 301


def test_a_low_rate_asks_redis_for_every_request(user_rate):
    user_rate("150/hour")  # a hundredth is 1: no batch
    user, secret = _viewer_with_token()
    client = APIClient(REMOTE_ADDR=fresh_client_ip())
    client.credentials(HTTP_AUTHORIZATION=f"Token {secret}")
    for expected in (1, 2, 3):
        client.get("/api/v1/incidents/")
        assert _count_in_redis(user, 3600) == expected


def test_reservations_kept_per_process_stay_bounded(monkeypatch):
    monkeypatch.setattr(throttles, "_MAX_RESERVATIONS", 10)
    throttles.forget_reservations()
    for n in range(30):
        throttles._keep_reserved(f"quell:throttle:user:user-{n}:60", 2, 9, 60)
    assert len(throttles._reserved) <= 10
    # A batch of the current window survives the pruning of turned windows.
    throttles.forget_reservations()
    for n in range(8):
        throttles._keep_reserved(f"quell:throttle:user:user-{n}:0", 2, 9, 0)
    throttles._keep_reserved("quell:throttle:user:user-99:60", 2, 9, 60)
    for n in range(3):
        throttles._keep_reserved(f"quell:throttle:user:user-{n + 100}:60", 2, 9, 60)
    assert "quell:throttle:user:user-99:60" in throttles._reserved
    assert not any(key.endswith(":0") for key in throttles._reserved)
    throttles.forget_reservations()
