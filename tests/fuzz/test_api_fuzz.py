"""Property-based fuzzing of the whole REST API against its own OpenAPI schema (schemathesis).

Every operation in /api/v1/schema/ gets about 25 generated requests (valid and invalid ones), once
as an admin and once as a viewer, served in-process through Django's WSGI application (no
server, no network). Each response must be a non-5xx with a declared status code, a declared
content type and a body that conforms to the declared schema. The database is seeded with
realistic objects (tests/fuzz/seed.py) and path parameters are drawn from their ids as often as
made up, so detail endpoints are exercised on real rows as well as on missing ones.

The fuzz makes up hosts and URLs: every outbound connection is confined to loopback for its
duration (tests/fuzz/guard.py) and the test fails if anything else was even attempted. Celery
tasks the API enqueues are recorded instead of sent, so nothing runs them during or after.

Run it alone: scripts/test tests/fuzz -m fuzz   (docs/security.md, "Fuzzing the API").
"""

from __future__ import annotations

import io

import pytest
import schemathesis
from celery.app.task import Task
from django.conf import settings as django_settings
from django.core import signals
from django.core.handlers.wsgi import WSGIHandler
from django.core.management import call_command
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.factories import UserFactory
from tests.fuzz.guard import confine_outbound_to_loopback
from tests.fuzz.seed import seed_world

pytestmark = [pytest.mark.fuzz, pytest.mark.django_db]

SCHEMA_PATH = "/api/v1/schema/"
EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _token_for(username: str) -> str:
    out = io.StringIO()
    call_command("quell_token", username, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


@pytest.fixture
def enqueued_tasks(monkeypatch):
    """Celery tasks the API enqueues during the fuzz: recorded, never sent to a broker or run."""
    assert not django_settings.CELERY_TASK_ALWAYS_EAGER, "the fuzz must not run tasks inline"
    calls: list[str] = []

    def record(task, args=None, kwargs=None, **options):
        calls.append(task.name)

    monkeypatch.setattr(Task, "apply_async", record)
    return calls


@pytest.fixture
def outbound():
    with confine_outbound_to_loopback() as record:
        yield record
    assert record.non_loopback_attempts() == [], "the fuzz tried to leave the machine"


@pytest.fixture
def wsgi_app():
    """Django's WSGI handler, keeping the test's connection open across requests (as Django's
    test client does): closing it would end the transaction the seeded data lives in."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield WSGIHandler()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture(params=["admin", "viewer"])
def fuzz_auth(request, db):
    """The Authorization header of an admin, then of a viewer (a token from quell_token)."""
    role = request.param
    user = UserFactory(
        username=f"fuzz-{role}", role=role, is_staff=role == "admin", is_superuser=role == "admin"
    )
    return {"Authorization": f"Token {_token_for(user.username)}"}


@pytest.fixture
def fuzz_schema(fuzz_auth, enqueued_tasks, outbound, wsgi_app):
    """The schema served at /api/v1/schema/, loaded through the in-process WSGI app."""
    return schemathesis.openapi.from_wsgi(SCHEMA_PATH, wsgi_app, headers=fuzz_auth)


@pytest.fixture
def world(db):
    return seed_world(actor=UserFactory(username="fuzz-seed", role="commander"))


def _strategy(operation, world):
    """Valid and invalid requests; path parameters made up or naming seeded objects."""
    made_up = {p.name: None for p in operation.path_parameters}
    seeded = world.path_parameters(operation.path, made_up)
    strategies = []
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
        strategies.append(operation.as_strategy(generation_mode=mode))
        for values in seeded:
            strategies.append(operation.as_strategy(generation_mode=mode, path_parameters=values))
    return st.one_of(strategies)


def _fuzz_operation(operation, world, auth):
    @given(case=_strategy(operation, world))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case):
        # A savepoint per request: a database error in one request cannot poison the next ones.
        with transaction.atomic():
            response = case.call(headers=auth)
        case.validate_response(response, checks=CHECKS, headers=auth)

    fuzz()


def test_api_conforms_to_its_schema(fuzz_schema, fuzz_auth, world, subtests, settings):
    # Quell's own policy confines its connections to loopback; the guard (fixture) records any
    # socket, DNS or libpq attempt beyond it and fails the test.
    assert settings.QUELL_OUTBOUND_CONFINE_TO_LOOPBACK
    operations = [result.ok() for result in fuzz_schema.get_all_operations()]
    assert len(operations) > 80, "the schema lost operations"
    for operation in operations:
        with subtests.test(msg=operation.label):
            _fuzz_operation(operation, world, fuzz_auth)
