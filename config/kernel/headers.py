"""Standard HTTP headers the API's views set: Location on creates, ETag and its preconditions.

Location: views name the created resource's route; config.api_headers makes every Location
absolute. ETag: a strong validator of a detail's JSON representation (a hash of it), so
`If-None-Match` answers 304 when nothing a client sees has changed, and `If-Match` on a write
refuses it (412) when the resource changed since the client read it. Writes check `If-Match`
under the same row lock their service takes (see `if_match`), so no change can slip in between
the check and the write.
"""

from __future__ import annotations

import hashlib

from django.db import transaction
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.response import Response

from .openapi import errors
from .renderers import dumps


def location(route: str, **kwargs) -> dict[str, str]:
    """`headers=` for a 201: the created resource's URL (made absolute by the middleware)."""
    return {"Location": reverse(route, kwargs=kwargs)}


def created(body, route: str, **kwargs) -> Response:
    """201 Created with the body and the Location of what was created (`route`, `kwargs`)."""
    return Response(body, status=status.HTTP_201_CREATED, headers=location(route, **kwargs))


class PreconditionFailed(APIException):
    status_code = status.HTTP_412_PRECONDITION_FAILED
    default_detail = (
        "The resource changed since you read it (If-Match does not match its ETag): "
        "re-read it and decide again."
    )
    default_code = "precondition_failed"


IF_NONE_MATCH = OpenApiParameter(
    name="If-None-Match",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="An ETag from an earlier read: 304 Not Modified (no body) while it still holds.",
)
IF_MATCH = OpenApiParameter(
    name="If-Match",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    required=False,
    description="The ETag you read: the write is refused with 412 if the resource has changed "
    "since.",
)
ETAG = OpenApiParameter(
    name="ETag",
    type=OpenApiTypes.STR,
    location=OpenApiParameter.HEADER,
    response=[200],
    description="Validator of this representation, for If-None-Match and If-Match.",
)
# extend_schema(parameters=..., responses={..., **...}) of detail reads and of guarded writes.
CONDITIONAL_GET_PARAMETERS = [IF_NONE_MATCH, ETAG]
NOT_MODIFIED = {
    304: OpenApiResponse(description="Not modified: your copy (If-None-Match) is current.")
}
IF_MATCH_PARAMETERS = [IF_MATCH, ETAG]
PRECONDITION = errors(
    412, e412="If-Match does not match the current ETag: re-read and decide again."
)


def etag_for(data) -> str:
    """A strong ETag of the JSON representation `data` (what the client sees)."""
    return '"' + hashlib.sha256(dumps(data, sort_keys=True)).hexdigest()[:32] + '"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def _matches(header: str, etag: str, *, weak: bool) -> bool:
    for tag in _tags(header):
        if tag == "*":
            return True
        if weak and tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def conditional_response(request, data, **kwargs) -> Response:
    """The detail `data` with its ETag, or 304 when `If-None-Match` names it (weak compare)."""
    etag = etag_for(data)
    header = request.headers.get("If-None-Match")
    if request.method in ("GET", "HEAD") and header and _matches(header, etag, weak=True):
        return Response(status=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    response = Response(data, **kwargs)
    response["ETag"] = etag
    return response


def if_match(request, current) -> None:
    """Refuse the write (412) unless `If-Match` is absent or names the ETag of `current`, the
    representation as it is now (call it with the row locked, inside the write's transaction).
    `current` may be the data or a callable returning it, which is only called when needed."""
    header = request.headers.get("If-Match")
    if not header:
        return
    data = current() if callable(current) else current
    if not _matches(header, etag_for(data), weak=False):
        raise PreconditionFailed()


def guarded_write(request, *, lock, current, write):
    """Run `write()`; with `If-Match`, first take the row lock (`lock()`) and compare the
    header with the ETag of `current()`, all in one transaction, so the representation the
    check saw is the one the write changes. Returns what `write()` returns."""
    if not request.headers.get("If-Match"):
        return write()
    with transaction.atomic():
        lock()
        if_match(request, current)
        return write()
