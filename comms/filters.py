"""The comms app's list filters (django-filter) for its API."""

from __future__ import annotations

import django_filters

from .models import StatusUpdate


class UpdateFilter(django_filters.FilterSet):
    # Incremental sync: the updates drafted, edited or published since a tool's last read.
    updated_after = django_filters.IsoDateTimeFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Changed at or after (ISO 8601): for incremental sync.",
    )
    updated_before = django_filters.IsoDateTimeFilter(
        field_name="updated_at", lookup_expr="lt", help_text="Changed before (ISO 8601)."
    )

    class Meta:
        model = StatusUpdate
        fields = ["audience", "state", "updated_after", "updated_before"]
