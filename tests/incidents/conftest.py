import pytest

from incidents import services
from tests.factories import IncidentFactory, UserFactory


@pytest.fixture(autouse=True)
def _incidents_close_without_postmortems(settings):
    """These tests exercise the incidents app alone; the postmortem close guard has its own
    tests (tests/postmortems/test_close_guard.py)."""
    settings.QUELL_CLOSE_GUARDS = []


@pytest.fixture
def incident(responder):
    """A SEV2 incident declared through the service (so it has its first timeline event)."""
    return services.incident_declare(
        title="Orders table locked", severity="SEV2", kind="availability", actor=responder
    )


@pytest.fixture
def make_incident(db):
    """Bare incident rows in any status (test setup only; real code declares through services)."""

    def make(**fields):
        return IncidentFactory(**fields)

    return make


@pytest.fixture
def other_responder(db):
    return UserFactory(username="other-responder", role="responder")
