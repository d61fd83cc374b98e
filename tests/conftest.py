"""Fixtures every app's tests share: users by access group, API clients, and the browser
(Playwright drives Debian's chromium against live_server; never `playwright install`: the
machine is offline, scripts/test installs chromium from Debian). Screenshots go to
test-artifacts/ (kept by CI as artifacts).
"""

import os
import pathlib
import shutil

import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = pathlib.Path(__file__).resolve().parents[1] / "test-artifacts"


def pytest_collection_modifyitems(config, items):
    # pytest-playwright runs an event loop in the test thread; Django's ORM refuses to run
    # beside one unless told that this (synchronous) use is deliberate. Only browser sessions
    # say so: elsewhere an async-unsafe call stays an error.
    if any("page" in getattr(item, "fixturenames", ()) for item in items):
        os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def viewer(db):
    return UserFactory(username="viewer", role="viewer")


@pytest.fixture
def responder(db):
    return UserFactory(username="responder", role="responder")


@pytest.fixture
def commander(db):
    return UserFactory(username="commander", role="commander")


@pytest.fixture
def admin_user(db):
    return UserFactory(username="admin", role="admin", is_staff=True, is_superuser=True)


@pytest.fixture
def api():
    """An API client; call api.force_authenticate(user) or use the *_api fixtures."""
    return APIClient()


def _client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def viewer_api(viewer):
    return _client_for(viewer)


@pytest.fixture
def responder_api(responder):
    return _client_for(responder)


@pytest.fixture
def commander_api(commander):
    return _client_for(commander)


@pytest.fixture
def admin_api(admin_user):
    return _client_for(admin_user)


# --- Browser tests ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        pytest.fail("chromium is missing: apt-get install -y chromium (scripts/test does this)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


@pytest.fixture
def screenshot(page, request):
    """screenshot("step-name") saves a full-page PNG under test-artifacts/<test name>/."""
    folder = ARTIFACTS / request.node.name
    folder.mkdir(parents=True, exist_ok=True)

    def take(name: str) -> pathlib.Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    take.folder = folder  # for screenshots of a second browser (another user)
    return take


@pytest.fixture
def login(page, live_server):
    """login(user, password) signs in through Django's login page."""

    def do(user, password="pw-for-tests"):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", user.get_username())
        page.fill("input[name=password]", password)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_load_state()

    return do


# --- Schema conformance (tests/conformance.py) -----------------------------------------------

# Modules whose API answers are checked against the served schema: the API tests of every app.
CONFORMANCE_MODULES = ("test_idempotency", "test_authorization_matrix", "test_bad_input")


def _checks_conformance(module_name: str) -> bool:
    name = module_name.rsplit(".", 1)[-1]
    return name.startswith("test_api") or name.endswith("_api") or name in CONFORMANCE_MODULES


@pytest.fixture(autouse=True)
def schema_conformance(request, monkeypatch):
    """Every /api/v1/ answer a test in an API module receives must match the schema; the test
    fails at the first that does not. Other modules get None."""
    if not _checks_conformance(request.module.__name__):
        return None
    from tests import conformance

    return conformance.install(monkeypatch)


@pytest.fixture(autouse=True)
def _fresh_target_resolutions():
    """Detection remembers label -> target resolutions for a few seconds; a test's targets are
    rolled back with it (no signal says so), so each test starts with none remembered."""
    from diagnostics.detection.mapping import forget_target_resolutions

    forget_target_resolutions()
    yield
    forget_target_resolutions()
