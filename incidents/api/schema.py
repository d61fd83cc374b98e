"""OpenAPI generation: fields declare exactly what they can hold.

The common error answers of every operation are declared once by a postprocessing hook
(config.openapi.add_common_error_responses).
"""

from __future__ import annotations

import copy

from django.core.exceptions import FieldDoesNotExist
from drf_spectacular.openapi import AutoSchema
from rest_framework import serializers


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
