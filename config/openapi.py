"""What every API operation may answer besides its success, declared once for the whole schema.

Any operation can meet a bad parameter or body (400), missing or wrong credentials (401), a role
that does not allow it (403), a path or page that names nothing (404), a body in a type it does
not read (415) and the throttles (429). Views declare their own answers (201, 409, 413, ...);
this hook adds the common ones they leave out, each with the JSON error body Quell sends, so
that clients generated from the schema, and the fuzzing that checks responses against it, know
every status they can receive.
"""

from __future__ import annotations

ERROR_SCHEMA = {
    "type": "object",
    "description": (
        "Every error: `detail` says what went wrong for the person reading it, `code` is a "
        "stable machine code (docs/api.md lists them), `errors` maps each input field at fault "
        "to its messages (a message about part of a nested field starts with that part's "
        "path; `non_field_errors` for the body as a whole), and is empty when no input is."
    ),
    "required": ["detail", "code", "errors"],
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
        },
    },
    # A 409 on a postmortem adds what the client needs to merge (its schema says which).
    "additionalProperties": True,
}

COMMON = {
    "400": "Invalid parameters or body: `errors` names each one at fault.",
    "401": "No or invalid credentials.",
    "403": "Your role does not allow this.",
    "404": "No such object, page or route.",
    "429": "Too many requests: wait as many seconds as Retry-After says.",
}
WITH_BODY = {"415": "The body is not in a media type this operation reads (send JSON)."}


def add_common_error_responses(result, generator, request, public):
    """drf-spectacular postprocessing hook: the common error answers on every operation."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            responses = operation.setdefault("responses", {})
            common = dict(COMMON)
            if "requestBody" in operation:
                common.update(WITH_BODY)
            for code, description in common.items():
                declared = responses.get(code)
                if declared is None:
                    responses[code] = {"description": description, "content": error}
                elif "content" not in declared:
                    declared["content"] = error
    return result
