"""Filters every app's lists share."""

import datetime

import django_filters
from django import forms
from django_filters.fields import IsoDateTimeField


class InstantField(IsoDateTimeField):
    """An ISO 8601 instant, converted to UTC before it reaches the database.

    Python accepts offsets up to ±23:59, PostgreSQL only up to ±15:59: "2000-01-01T00:00+16:00"
    passed through as it came was a DataError, a 500. In UTC any offset is fine, except at the
    ends of the calendar, where the conversion itself leaves Python's range.
    """

    def to_python(self, value):
        instant = super().to_python(value)
        if instant is None or instant.tzinfo is None:
            return instant
        try:
            return instant.astimezone(datetime.UTC)
        except OverflowError:
            raise forms.ValidationError(
                "That instant is outside the calendar once converted to UTC.", code="invalid"
            ) from None


class InstantFilter(django_filters.IsoDateTimeFilter):
    """IsoDateTimeFilter on InstantField: any valid ISO 8601 instant filters, none errors."""

    field_class = InstantField


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
