"""The comms app's list filters (django-filter) for its API."""

from __future__ import annotations

from config.kernel.filters import ChangedSinceFilterSet

from .models import StatusUpdate


class UpdateFilter(ChangedSinceFilterSet):
    """An incident's updates by audience and state, and those changed since a time (sync)."""

    class Meta:
        model = StatusUpdate
        fields = ["audience", "state", "updated_after", "updated_before"]
