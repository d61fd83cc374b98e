import pytest
from django.test import Client

from incidents import services
from tests.factories import UserFactory


@pytest.fixture(autouse=True)
def fresh_insights(settings):
    """Compute the insights page on every view: tests change the data between views."""
    settings.QUELL_INSIGHTS_CACHE_SECONDS = 0


def _client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def viewer_client(viewer):
    return _client(viewer)


@pytest.fixture
def responder_client(responder):
    return _client(responder)


@pytest.fixture
def commander_client(commander):
    return _client(commander)


@pytest.fixture
def htmx_headers():
    """Headers htmx sends with a request aimed at an element id."""

    def make(target: str = "incident-body") -> dict:
        return {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": target}

    return make


@pytest.fixture
def incident(commander):
    """A SEV2 incident declared through the service (so it has its timeline)."""
    return services.incident_declare(
        title="Checkout queries time out",
        severity="SEV2",
        kind="performance",
        description="p99 at 12 s",
        actor=commander,
    )


@pytest.fixture
def other_responder(db):
    return UserFactory(username="rita", role="responder")
