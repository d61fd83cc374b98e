"""Serializer fields every app's API shares."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers


class AbsoluteUrlField(serializers.CharField):
    """A URL Quell built as a path ("/incidents/4/#panel-x"), answered absolute like every
    `url` in the API: from the request when the serializer has one, else from QUELL_BASE_URL.
    An empty value (no such place) stays empty."""

    def to_representation(self, value):
        path = super().to_representation(value)
        if not path or "://" in path:
            return path
        request = self.context.get("request") if hasattr(self, "context") else None
        if request is not None:
            return request.build_absolute_uri(path)
        return settings.QUELL_BASE_URL.rstrip("/") + path
