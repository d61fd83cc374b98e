"""Form fields every app's forms share."""

import datetime

from django import forms


class UtcInstantMixin:
    """Convert an aware datetime to UTC as it is read, so any offset Python accepts is stored.

    Python reads offsets up to ±23:59, PostgreSQL only up to ±15:59: "2000-01-01T00:00+16:00"
    passed through as typed was a DataError, a 500. In UTC any offset is fine, except at the
    ends of the calendar, where the conversion itself leaves Python's range: a field error.
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


class InstantField(UtcInstantMixin, forms.DateTimeField):
    """A date and time typed or picked in a form (naive input is in the current time zone)."""
