"""A tool author's path: generate a typed client from the live schema with openapi-python-client
(pinned in requirements-dev.txt) and run declare -> note -> list -> transition -> timeline
through it against a running server, with no hand patch.

The client is generated into the test's tmp dir and imported from there (sys.path), so nothing
is installed. Every answer the client receives is also checked against the schema
(tests/conformance.py), and the generated models parse every body strictly: a field the schema
types wrongly fails here.
"""

from __future__ import annotations

import importlib
import json
import pathlib
import pkgutil
import subprocess
import sys
import uuid

import httpx
import pytest

from tests import conformance
from tests.factories import UserFactory, api_token_for

GENERATOR = pathlib.Path(sys.executable).with_name("openapi-python-client")
PACKAGE = "quell_generated_client"


@pytest.fixture
def generated_client(live_server, tmp_path):
    """(package module, AuthenticatedClient for a commander's token, raw schema)."""
    user = UserFactory(username="tool-author", role="commander")
    token = api_token_for(user, name="generated-client")
    schema = httpx.get(
        f"{live_server.url}/api/v1/schema/?format=json",
        headers={"Authorization": f"Token {token}"},
        timeout=60,
    )
    assert schema.status_code == 200, schema.text[:300]
    source = tmp_path / "schema.json"
    source.write_bytes(schema.content)
    config = tmp_path / "config.json"
    # No post hooks: the generator's default runs ruff from PATH, which is not this venv's.
    config.write_text(json.dumps({"post_hooks": [], "package_name_override": PACKAGE}))
    result = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(source),
            "--output-path",
            str(tmp_path / PACKAGE),
            "--meta",
            "none",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # A warning means some operation or model was left out of the client.
    assert "Warning" not in result.stdout, result.stdout
    sys.path.insert(0, str(tmp_path))
    try:
        package = importlib.import_module(PACKAGE)
        client = package.AuthenticatedClient(
            base_url=live_server.url,
            token=token,
            prefix="Token",
            raise_on_unexpected_status=True,
            httpx_args={"event_hooks": {"response": [conformance.check_httpx]}},
        )
        yield package, client, schema.json()
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def _module(name: str):
    return importlib.import_module(f"{PACKAGE}.{name}")


def _assert_every_module_imports(schema):
    api = _module("api")
    names = [m.name for m in pkgutil.walk_packages(api.__path__, f"{PACKAGE}.api.")]
    for name in names:
        importlib.import_module(name)
    operations = sum(
        1
        for item in schema["paths"].values()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )
    # One module per operation, plus one package per tag.
    assert len([n for n in names if n.count(".") == 3]) == operations


@pytest.mark.django_db(transaction=True)
def test_declare_note_list_transition_timeline_through_the_generated_client(generated_client):
    # One test, so the client is generated once (about half a minute).
    _, client, schema = generated_client
    _assert_every_module_imports(schema)
    models = _module("models")
    declare = _module("api.incidents.incidents_create")
    note = _module("api.timeline.incidents_timeline_create")
    listing = _module("api.incidents.incidents_list")
    transition = _module("api.incidents.incidents_transition_create")
    timeline = _module("api.timeline.incidents_timeline_list")
    detail = _module("api.incidents.incidents_retrieve")

    key = str(uuid.uuid4())
    body = models.IncidentCreateInputRequest(
        title="Checkout errors after deploy",
        severity=models.SeverityEnum.SEV2,
        kind=models.IncidentKindEnum.AVAILABILITY,
        description="5xx on /checkout since 10:02",
    )
    declared = declare.sync_detailed(client=client, body=body, idempotency_key=key)
    assert declared.status_code == 201
    incident = declared.parsed
    assert isinstance(incident, models.IncidentDetailOutput)
    assert declared.headers["location"].endswith(f"/api/v1/incidents/{incident.id}/")
    # A retry after a timeout replays the answer instead of declaring twice.
    again = declare.sync_detailed(client=client, body=body, idempotency_key=key)
    assert again.parsed.id == incident.id and again.headers["idempotent-replayed"] == "true"

    added = note.sync(
        incident_id=incident.id,
        client=client,
        body=models.NoteInputRequest(message="Rolled back the deploy"),
    )
    assert added.message == "Rolled back the deploy"

    page = listing.sync(client=client, severity=[models.IncidentsListSeverityItem.SEV2])
    assert [i.id for i in page.results] == [incident.id]
    assert page.count == 1

    read = detail.sync_detailed(incident_id=incident.id, client=client)
    moved = transition.sync(
        incident_id=incident.id,
        client=client,
        body=models.TransitionInputRequest(
            status=models.IncidentStatusEnum.IDENTIFIED, reason="Bad deploy"
        ),
        if_match=read.headers["etag"],
    )
    assert moved.status == models.IncidentStatusEnum.IDENTIFIED

    events = timeline.sync(incident_id=incident.id, client=client)
    kinds = [e.kind for e in events.results]
    assert models.TimelineEventKindEnum.NOTE in kinds
    assert models.TimelineEventKindEnum.STATUS_CHANGED in kinds
    assert events.count == len(events.results)
