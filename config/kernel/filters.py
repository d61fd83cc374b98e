"""Filters every app's lists share."""

import django_filters
from django_filters.fields import IsoDateTimeField

from .forms import UtcInstantMixin


class IsoInstantField(UtcInstantMixin, IsoDateTimeField):
    """An ISO 8601 instant in a query string, in UTC before it reaches the database."""


class InstantFilter(django_filters.IsoDateTimeFilter):
    """IsoDateTimeFilter on IsoInstantField: any valid ISO 8601 instant filters, none errors."""

    field_class = IsoInstantField


class ChangedSinceFilterSet(django_filters.FilterSet):
    """`updated_after` / `updated_before` on the model's `updated_at`: incremental sync for
    API lists (incidents, diagnostic runs, comms updates)."""

    updated_after = InstantFilter(
        field_name="updated_at",
        lookup_expr="gte",
        help_text="Changed at or after (ISO 8601): for incremental sync.",
    )
    updated_before = InstantFilter(
        field_name="updated_at", lookup_expr="lt", help_text="Changed before (ISO 8601)."
    )
