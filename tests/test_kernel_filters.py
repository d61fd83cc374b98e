"""config.kernel.filters.StaticFormFilterSet: per-request FilterSets without the deep copies."""

import pytest
from django.http import QueryDict

from incidents.filters import IncidentFilter, IncidentListFilter
from incidents.models import Incident
from incidents.severity import Severity
from tests.factories import IncidentFactory

pytestmark = pytest.mark.django_db


def test_each_filterset_filters_with_its_own_data_and_method_filters():
    open_one = IncidentFactory(severity=Severity.SEV1)
    closed = IncidentFactory(severity=Severity.SEV2, status="closed")

    first = IncidentFilter(QueryDict("open=true"), queryset=Incident.objects.all())
    second = IncidentFilter(QueryDict("severity=SEV2"), queryset=Incident.objects.all())

    assert first.is_valid() and second.is_valid()
    assert list(first.qs) == [open_one]  # `open` is a method filter, bound to `first`
    assert list(second.qs) == [closed]
    assert all(f.parent is first for f in first.filters.values())
    assert all(f.parent is second for f in second.filters.values())
    assert first.filters["open"] is not IncidentFilter.base_filters["open"]
    # The form class and its fields are built once and shared.
    assert first.form.fields["severity"] is second.form.fields["severity"]


def test_bad_input_is_still_a_form_error_of_that_request_only():
    bad = IncidentFilter(QueryDict("severity=SEV9"), queryset=Incident.objects.all())
    good = IncidentFilter(QueryDict("severity=SEV1"), queryset=Incident.objects.all())
    assert not bad.is_valid() and "severity" in bad.errors
    assert good.is_valid() and not good.errors


def test_a_filterset_that_changes_its_fields_per_request_keeps_them_to_itself():
    with_targets = IncidentListFilter(
        QueryDict(""), queryset=Incident.objects.all(), targets=[(7, "shop")]
    )
    without = IncidentListFilter(QueryDict(""), queryset=Incident.objects.all())

    assert "target" not in without.form.fields
    assert list(with_targets.form.fields["target"].choices) == [("", "Any target"), (7, "shop")]
    again = IncidentListFilter(
        QueryDict(""), queryset=Incident.objects.all(), targets=[(8, "billing")]
    )
    assert list(again.form.fields["target"].choices) == [("", "Any target"), (8, "billing")]
    assert list(with_targets.form.fields["target"].choices) == [("", "Any target"), (7, "shop")]


def test_the_target_select_offers_any_target_once():
    listed = IncidentListFilter(
        QueryDict(""), queryset=Incident.objects.all(), targets=[(7, "shop")]
    )
    html = str(listed.form["target"])
    assert html.count("Any target") == 1
