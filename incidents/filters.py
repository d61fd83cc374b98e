"""Query-string filters for incident and timeline lists (django-filter)."""

import datetime

import django_filters
from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from config.kernel.filters import ChangedSinceFilterSet, InstantFilter, StaticFormFilterSet

from . import registry
from .forms import OPEN, FilterDateField, IncidentListForm
from .models import (
    OPEN_STATUSES,
    DetectionSource,
    EventKind,
    Incident,
    Kind,
    Status,
    TimelineEvent,
)
from .severity import Severity

# Public ordering names and the columns behind them. Every ordering ends with the primary key
# so that pages never overlap or skip rows when many incidents share a timestamp or severity.
ORDERINGS = {
    "declared_at": "declared_at",
    "detected_at": "detected_at",
    "updated_at": "updated_at",
    "severity": "severity",
    "status": "status",
    "title": "title",
    "id": "id",
}


class IdFilter(django_filters.Filter):
    """A row id: a whole number a bigint column can hold (anything else is a 400, not a 500)."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(*args, **kwargs)


class IncidentFilter(ChangedSinceFilterSet, StaticFormFilterSet):
    # distinct=False: these filter the incident's own columns (no join can duplicate a row),
    # and django-filter's default DISTINCT would make PostgreSQL de-duplicate whole rows,
    # role holders included, before it can stop at a page (ten times slower at 100,000).
    severity = django_filters.MultipleChoiceFilter(
        choices=Severity.choices,
        distinct=False,
        help_text="One or more severities (repeat the parameter).",
    )
    status = django_filters.MultipleChoiceFilter(
        choices=Status.choices,
        distinct=False,
        help_text="One or more statuses (repeat the parameter).",
    )
    kind = django_filters.MultipleChoiceFilter(choices=Kind.choices, distinct=False)
    detection_source = django_filters.MultipleChoiceFilter(
        choices=DetectionSource.choices, distinct=False
    )
    # A choice rather than a BooleanFilter, which silently ignores values it cannot read.
    open = django_filters.ChoiceFilter(
        choices=(("true", "true"), ("false", "false")),
        method="filter_open",
        help_text="true: investigating, identified or monitoring; false: resolved or closed.",
    )
    declared_after = InstantFilter(
        field_name="declared_at", lookup_expr="gte", help_text="Declared at or after (ISO 8601)."
    )
    declared_before = InstantFilter(
        field_name="declared_at", lookup_expr="lt", help_text="Declared before (ISO 8601)."
    )
    detected_after = InstantFilter(
        field_name="detected_at", lookup_expr="gte", help_text="Detected at or after (ISO 8601)."
    )
    detected_before = InstantFilter(
        field_name="detected_at", lookup_expr="lt", help_text="Detected before (ISO 8601)."
    )
    target = IdFilter(
        method="filter_target",
        help_text="Incidents linked to this diagnostics target (id).",
    )
    search = django_filters.CharFilter(
        method="filter_search",
        help_text="Words in the title, description, channel or detected_by; '#123' finds by id.",
    )
    ordering = django_filters.OrderingFilter(
        fields=tuple(ORDERINGS.items()),
        help_text="Sort by declared_at (default, newest first with '-'), detected_at, "
        "updated_at, severity (SEV1 first), status, title or id; prefix '-' to reverse.",
    )

    class Meta:
        model = Incident
        fields = ()

    def filter_open(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "true":
            return queryset.filter(status__in=OPEN_STATUSES)
        return queryset.exclude(status__in=OPEN_STATUSES)

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # Imported here: selectors run this FilterSet (incident_list(filters=...)).
        from .selectors import incident_search

        return incident_search(queryset, value)

    def filter_target(self, queryset: QuerySet, name: str, value: int) -> QuerySet:
        return queryset.filter(registry.incident_target_q(int(value)))

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        queryset = super().filter_queryset(queryset)
        ordering = self.form.cleaned_data.get("ordering")
        if ordering:
            # A stable tiebreaker in the same direction as the first key.
            tiebreak = "-id" if ordering[0].startswith("-") else "id"
            if ordering[-1].lstrip("-") != "id":
                queryset = queryset.order_by(*ordering, tiebreak)
        return queryset


class DayFilter(django_filters.DateFilter):
    """A calendar day in the organisation's time zone, bounded to what datetime can hold."""

    field_class = FilterDateField


def _start_of_day(day: datetime.date) -> datetime.datetime:
    """Midnight of `day` in the current time zone."""
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


class IncidentListFilter(IncidentFilter):
    """The web list's filters: IncidentFilter with one value per select, `q` for the search box,
    "open" as a status, and days rather than instants ("until" includes the whole day).

    Pass `targets` ((id, name) pairs) to offer the target filter; without any it is left out.
    The API's other filters are not offered: the page's form does not show them.
    """

    search = open = detection_source = detected_after = detected_before = ordering = None
    # The target's choices are set per request (below).
    shares_form_fields = False

    q = django_filters.CharFilter(method="filter_search", label="Search", max_length=200)
    severity = django_filters.ChoiceFilter(
        choices=Severity.choices, empty_label="Any severity", label="Severity"
    )
    status = django_filters.ChoiceFilter(
        choices=[(OPEN, "Open (not resolved)"), *Status.choices],
        empty_label="Any status",
        label="Status",
        method="filter_status",
    )
    kind = django_filters.ChoiceFilter(choices=Kind.choices, empty_label="Any kind")
    target = django_filters.ChoiceFilter(
        choices=(), empty_label="Any target", method="filter_target"
    )
    declared_after = DayFilter(
        label="Declared from",
        method="filter_declared_after",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    declared_before = DayFilter(
        label="Declared until",
        method="filter_declared_before",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    class Meta:
        model = Incident
        fields = ()
        form = IncidentListForm

    def __init__(self, *args, targets: list[tuple[int, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if targets:
            # The field lists its empty choice ("Any target") itself.
            self.form.fields["target"].choices = targets
        else:
            del self.form.fields["target"]

    def filter_status(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == OPEN:
            return queryset.filter(status__in=OPEN_STATUSES)
        return queryset.filter(status=value)

    def filter_declared_after(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(declared_at__gte=_start_of_day(value))

    def filter_declared_before(self, queryset: QuerySet, name: str, value) -> QuerySet:
        return queryset.filter(declared_at__lt=_start_of_day(value + datetime.timedelta(days=1)))


class TimelineFilter(StaticFormFilterSet):
    kind = django_filters.MultipleChoiceFilter(
        choices=EventKind.choices,
        distinct=False,
        help_text="One or more event kinds (repeat the parameter).",
    )
    after = InstantFilter(field_name="occurred_at", lookup_expr="gte")
    before = InstantFilter(field_name="occurred_at", lookup_expr="lt")
    # Events are never changed: "updated" is when Quell recorded one (a backdated event is
    # recorded now), so a tool syncing with updated_after misses none.
    updated_after = InstantFilter(
        field_name="recorded_at",
        lookup_expr="gte",
        help_text="Recorded at or after (ISO 8601): for incremental sync.",
    )
    updated_before = InstantFilter(
        field_name="recorded_at", lookup_expr="lt", help_text="Recorded before (ISO 8601)."
    )
    order = django_filters.ChoiceFilter(
        choices=(("oldest", "Oldest first"), ("newest", "Newest first")),
        method="filter_order",
        empty_label=None,
        help_text="oldest (default) or newest first.",
    )

    class Meta:
        model = TimelineEvent
        fields = ()

    def filter_order(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        if value == "newest":
            return queryset.order_by("-occurred_at", "-id")
        return queryset.order_by("occurred_at", "id")
