"""Schema conformance of real answers: every API response the API tests receive is checked
against the OpenAPI schema Quell serves (/api/v1/schema/), as a tool generated from it would
read it.

The `schema_conformance` fixture (autouse in the API test modules, see tests/conftest.py) wraps
Django's test client: each /api/v1/ answer is matched to its operation, and the test fails at
the request that got an answer the schema does not describe:

- an operation missing from the schema (a route that answers, but is not documented);
- a status code the operation does not declare;
- a body that does not validate against the declared schema for its status and content type
  (schemathesis' response-schema check: OpenAPI 3.0 `nullable` and the rest understood);
- a 201 without an absolute Location, or any answer without an X-Request-ID.

The schema is generated once per test session from the code (the same generator the endpoint
uses), so a test needs no user allowed to read the schema.
"""

from __future__ import annotations

import functools
import json
import os
from urllib.parse import urlsplit

import requests
import schemathesis
from django.test import Client
from schemathesis.core.failures import FailureGroup
from schemathesis.core.transport import Response as SchemathesisResponse

API_PREFIX = "/api/v1/"
# QUELL_CONFORMANCE_SURVEY=<file>: write mismatches to the file instead of failing (to list them
# all at once while fixing the schema).
SURVEY = os.environ.get("QUELL_CONFORMANCE_SURVEY", "")
# Served by drf-spectacular, not part of the API they describe.
NOT_OPERATIONS = ("/api/v1/schema/", "/api/v1/docs/")


class NonConformingResponse(AssertionError):
    """An answer the schema does not describe."""


@functools.cache
def served_schema() -> dict:
    """The schema as /api/v1/schema/ serves it, as plain JSON."""
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(raw, renderer_context={}))


@functools.cache
def loaded_schema():
    return schemathesis.openapi.from_dict(served_schema())


def check_django(method: str, path: str, query: str, response) -> None:
    """check() for a Django test client's response."""
    content = b"" if getattr(response, "streaming", False) else response.content
    check(method, path, query, response.status_code, dict(response.items()), content)


def check_httpx(response) -> None:
    """check() for an httpx response (an event hook of a client talking to a live server)."""
    response.read()
    url = response.request.url
    check(
        response.request.method,
        url.path,
        url.query.decode(),
        response.status_code,
        dict(response.headers),
        response.content,
    )


def check(
    method: str, path: str, query: str, code: int, headers: dict[str, str], content: bytes
) -> None:
    """Raise NonConformingResponse unless the answer (`code`, `headers`, `content`) to
    `method` `path` is what the schema says the operation answers."""
    if not path.startswith(API_PREFIX) or path in NOT_OPERATIONS:
        return
    schema = loaded_schema()
    operation = schema.find_operation_by_path(method, path)
    headers = {name.lower(): value for name, value in headers.items()}
    where = f"{method} {path} -> {code}"
    if operation is None:
        # Unknown routes and methods may answer 404/405 (and refusals made before routing,
        # such as the NUL guard's 400): anything else means an undocumented operation.
        if code in (400, 404, 405):
            return
        raise NonConformingResponse(f"{where}: no operation in the schema answers this")
    if operation.responses.find_by_status_code(code) is None:
        declared = ", ".join(sorted(str(c) for c in operation.definition.raw["responses"]))
        raise NonConformingResponse(f"{where}: status not declared (declared: {declared})")
    if not headers.get("x-request-id"):
        raise NonConformingResponse(f"{where}: no X-Request-ID")
    if code == 201:
        location = headers.get("location", "")
        if not urlsplit(location).scheme:
            raise NonConformingResponse(f"{where}: Location {location!r} is not absolute")
    url = f"http://testserver{path}" + (f"?{query}" if query else "")
    wrapped = SchemathesisResponse(
        status_code=code,
        headers={name: [value] for name, value in headers.items()},
        content=content,
        request=requests.Request(method=method, url=url).prepare(),
        elapsed=0.0,
        verify=True,
        encoding="utf-8",
    )
    try:
        operation.validate_response(wrapped)
    except (AssertionError, FailureGroup) as exc:
        raise NonConformingResponse(f"{where}: body does not match the schema:\n{exc}") from exc


def install(monkeypatch) -> list[tuple[str, str, int]]:
    """Check every answer Django's test clients (APIClient included) get, for the current test.
    Returns the list of (method, path, status) checked."""
    checked: list[tuple[str, str, int]] = []
    original = Client.request

    def request(self, **environ):
        response = original(self, **environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "")
        try:
            check_django(method, path, environ.get("QUERY_STRING", ""), response)
        except NonConformingResponse as exc:
            if not SURVEY:
                raise
            with open(SURVEY, "a") as out:
                out.write(str(exc).replace("\n", " | ")[:600] + "\n")
        checked.append((method, path, response.status_code))
        return response

    monkeypatch.setattr(Client, "request", request)
    return checked
