"""The postmortems app's list filters (django-filter), used by its API lists: a bad value is a
400 naming the parameter, never an empty or unfiltered list."""

from __future__ import annotations

import django_filters
from django.utils import timezone

from incidents.severity import Severity

from .models import (
    CLOSED_ACTION_STATUSES,
    ActionCategory,
    ActionItem,
    ActionStatus,
    Postmortem,
    PostmortemStatus,
    Review,
    ReviewStatus,
)

# "true"/"false" only: django-filter's BooleanFilter takes any other word as "no filter".
YES_NO = (("true", "true"), ("false", "false"))


class PostmortemFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=PostmortemStatus.choices)
    incident = django_filters.NumberFilter(field_name="incident_id", min_value=1)
    severity = django_filters.ChoiceFilter(
        field_name="incident__severity", choices=Severity.choices
    )

    class Meta:
        model = Postmortem
        fields = ["status", "incident", "severity"]


class ReviewFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ReviewStatus.choices)
    postmortem = django_filters.NumberFilter(field_name="postmortem_id", min_value=1)
    upcoming = django_filters.ChoiceFilter(
        choices=YES_NO,
        method="filter_upcoming",
        label="true: only scheduled, future reviews (soonest first)",
    )

    class Meta:
        model = Review
        fields = ["status", "postmortem", "upcoming"]

    def filter_upcoming(self, queryset, name, value):
        if value != "true":
            return queryset
        return queryset.filter(
            status=ReviewStatus.SCHEDULED, starts_at__gte=timezone.now()
        ).order_by("starts_at")


class ActionItemFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ActionStatus.choices)
    category = django_filters.ChoiceFilter(choices=ActionCategory.choices)
    owner = django_filters.NumberFilter(field_name="owner_id", min_value=1)
    postmortem = django_filters.NumberFilter(field_name="postmortem_id", min_value=1)
    incident = django_filters.NumberFilter(field_name="postmortem__incident_id", min_value=1)
    overdue = django_filters.ChoiceFilter(
        choices=YES_NO, method="filter_overdue", label="true: only open items past their due date"
    )

    class Meta:
        model = ActionItem
        fields = ["status", "category", "owner", "postmortem", "incident", "overdue"]

    def filter_overdue(self, queryset, name, value):
        if value != "true":
            return queryset
        return queryset.filter(due_date__lt=timezone.localdate()).exclude(
            status__in=CLOSED_ACTION_STATUSES
        )
