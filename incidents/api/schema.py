"""OpenAPI generation: fields declare exactly what they can hold.

The common error answers of every operation are declared once by a postprocessing hook
(config.openapi.add_common_error_responses).
"""

from __future__ import annotations

import copy

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers

from config.accounts import idempotency


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
    def get_override_parameters(self):
        # Creates decorated with config.accounts.idempotency.idempotent take Idempotency-Key.
        parameters = list(super().get_override_parameters())
        handler = getattr(self.view, (self.method or "").lower(), None)
        if getattr(handler, "idempotent", False):
            parameters.append(idempotency.PARAMETER)
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        handler = getattr(self.view, (self.method or "").lower(), None)
        if getattr(handler, "idempotent", False):
            # The Error component is declared by config.openapi.add_common_error_responses.
            error = {"$ref": "#/components/schemas/Error"}
            responses.setdefault(
                "422",
                {
                    "description": "The Idempotency-Key was already used for a different request.",
                    "content": {"application/json": {"schema": error}},
                },
            )
        return responses

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
