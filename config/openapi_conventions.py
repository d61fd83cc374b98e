"""Schema conventions every operation shares, applied once (drf-spectacular postprocessing hooks,
settings SPECTACULAR_SETTINGS) so that strict validators and client generators read the schema
as the API behaves (docs/api.md#headers).

any_of_unions      `oneOf` becomes `anyOf`. drf-spectacular writes a choice field that may be
                   blank or null, and a blank-or-URL field, as `oneOf` of the value and "" (or
                   null); "" can satisfy both branches (a URL format left unchecked), and a
                   value matching two branches of a `oneOf` is invalid. `anyOf` says what is
                   meant: either is fine. Generators read both as a union.
standard_headers   the response headers every answer carries (X-Request-ID, RateLimit-*), the
                   Location of every 201 and the Retry-After of every 429, declared once.
"""

from __future__ import annotations

HEADERS = {
    "RequestId": {
        "description": "The X-Request-ID you sent (1 to 128 of A-Z a-z 0-9 . _ : -), or one "
        "generated for this request; quote it when reporting a problem.",
        "schema": {"type": "string"},
    },
    "RateLimitLimit": {
        "description": "Requests allowed in the window of the throttle closest to its limit.",
        "schema": {"type": "integer"},
    },
    "RateLimitRemaining": {
        "description": "Requests left in that window.",
        "schema": {"type": "integer"},
    },
    "RateLimitReset": {
        "description": "Seconds until that throttle counts one request fewer.",
        "schema": {"type": "integer"},
    },
    "Location": {
        "description": "Absolute URL of what was created (for things without a URL of their "
        "own, such as notes, the collection they joined).",
        "required": True,
        "schema": {"type": "string", "format": "uri"},
    },
    "RetryAfter": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer"},
    },
}
_ALL = {
    "X-Request-ID": "RequestId",
    "RateLimit-Limit": "RateLimitLimit",
    "RateLimit-Remaining": "RateLimitRemaining",
    "RateLimit-Reset": "RateLimitReset",
}
_BY_STATUS = {"201": {"Location": "Location"}, "429": {"Retry-After": "RetryAfter"}}
METHODS = ("get", "post", "put", "patch", "delete")


def _replace_one_of(node):
    if isinstance(node, dict):
        if "oneOf" in node:
            node["anyOf"] = node.pop("oneOf")
        for value in node.values():
            _replace_one_of(value)
    elif isinstance(node, list):
        for value in node:
            _replace_one_of(value)


def any_of_unions(result, generator, request, public):
    _replace_one_of(result)
    return result


def standard_headers(result, generator, request, public):
    components = result.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in METHODS:
                continue
            for code, response in operation.get("responses", {}).items():
                if "$ref" in response:
                    continue
                headers = response.setdefault("headers", {})
                for name, component in {**_ALL, **_BY_STATUS.get(str(code), {})}.items():
                    headers.setdefault(name, {"$ref": f"#/components/headers/{component}"})
    return result
