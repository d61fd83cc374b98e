import pytest
from rest_framework.test import APIClient

from tests.factories import UserFactory


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
