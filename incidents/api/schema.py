"""OpenAPI generation: every operation declares the errors it can answer with.

drf-spectacular documents the success response of each operation only, yet every API view
answers 401 without credentials, 403 without the role, 404 for a missing object or page, and 400
for input it refuses, all as JSON in the shape incidents.api.exceptions gives them. A client (and
the schemathesis fuzz in tests/fuzz) needs those declared to tell an expected refusal from a
contract violation.
"""

from __future__ import annotations

import copy

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny

# DRF's error bodies: {"detail": "...", "code"?: "..."} or {"<field>": ["message", ...], ...}.
ERROR_SCHEMA = {
    "type": "object",
    "description": "`detail` (and a `code`) for a refusal; for invalid input, the messages "
    "of each offending field under its name.",
    "properties": {"detail": {"type": "string"}, "code": {"type": "string"}},
    "additionalProperties": True,
}

ERROR_DESCRIPTIONS = {
    "400": "Invalid input or a refused change: the messages by field, or `detail`.",
    "401": "No or invalid credentials.",
    "403": "Authenticated without the role this operation needs.",
    "404": "No such object (or page).",
}


def _model_field_allows_blank(field) -> bool:
    meta = getattr(getattr(field, "parent", None), "Meta", None)
    model = getattr(meta, "model", None)
    if model is None or "." in (field.source or ""):
        return False
    try:
        return bool(model._meta.get_field(field.source).blank)
    except FieldDoesNotExist:
        return False


class QuellAutoSchema(AutoSchema):
    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        # DRF drops allow_blank from read-only model fields, so a `blank=True` choice column
        # (a run's worst_status before any result) was declared as an enum without "" while the
        # API returns "". Declare what the column can hold.
        if (
            isinstance(field, serializers.ChoiceField)
            and field.read_only
            and not field.allow_blank
            and _model_field_allows_blank(field)
        ):
            field = copy.copy(field)
            field.allow_blank = True
        return super()._map_serializer_field(field, direction, bypass_extensions)

    def get_operation(self, *args, **kwargs):
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        responses = operation["responses"]
        for code in self._error_codes(operation):
            responses.setdefault(
                code,
                {
                    "content": {"application/json": {"schema": ERROR_SCHEMA}},
                    "description": ERROR_DESCRIPTIONS[code],
                },
            )
        return operation

    def _error_codes(self, operation) -> list[str]:
        parameters = operation.get("parameters", [])
        codes = []
        # A write can be refused by a domain rule (services raise, exceptions.py answers 400)
        # even without a body: publishing a published update, retrying a pending delivery.
        takes_input = "requestBody" in operation or any(p["in"] == "query" for p in parameters)
        if takes_input or self.method not in ("GET", "HEAD", "OPTIONS"):
            codes.append("400")
        if not all(isinstance(p, AllowAny) for p in self.view.get_permissions()):
            codes += ["401", "403"]
        paginated = self._is_list_view() and self._get_paginator() is not None
        if paginated or any(p["in"] == "path" for p in parameters):
            codes.append("404")
        return codes
