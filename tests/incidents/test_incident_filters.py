"""One FilterSet for incident lists: the API and the web list run IncidentFilter (the web
through IncidentListFilter) via selectors.incident_list / incident_filterset."""

import pytest
from django.http import QueryDict

from incidents import selectors
from incidents.filters import IncidentFilter, IncidentListFilter
from tests.factories import IncidentFactory, IncidentTargetFactory, TargetDatabaseFactory

pytestmark = pytest.mark.django_db


def titles(qs) -> list[str]:
    return sorted(i.title for i in qs)


def test_selector_runs_the_filterset():
    IncidentFactory(title="a", severity="SEV1", status="investigating")
    IncidentFactory(title="b", severity="SEV2", status="resolved")
    IncidentFactory(title="c payments", severity="SEV1", status="resolved")
    assert titles(selectors.incident_list(filters={"severity": ["SEV1"]})) == ["a", "c payments"]
    assert titles(selectors.incident_list(filters=QueryDict("open=false&search=pay"))) == [
        "c payments"
    ]
    assert titles(selectors.incident_list()) == ["a", "b", "c payments"]


def test_invalid_values_are_reported_and_the_rest_still_apply():
    IncidentFactory(title="a", severity="SEV1")
    IncidentFactory(title="b", severity="SEV2")
    filterset = selectors.incident_filterset(
        QueryDict("severity=SEV1&status=nonsense"), filterset_class=IncidentFilter
    )
    assert "status" in filterset.form.errors
    assert titles(filterset.qs) == ["a"]


def test_web_filters_days_and_open_through_the_same_filterset():
    IncidentFactory(title="open", status="monitoring")
    IncidentFactory(title="closed", status="closed")
    filterset = selectors.incident_filterset(
        QueryDict("status=open"), filterset_class=IncidentListFilter
    )
    assert titles(filterset.qs) == ["open"]
    assert "target" not in filterset.form.fields  # no targets offered: no target filter
    bad = selectors.incident_filterset(
        QueryDict("declared_after=2026-05-02&declared_before=2026-05-01"),
        filterset_class=IncidentListFilter,
    )
    assert bad.form.errors["declared_before"] == ["The end date is before the start date."]


def test_web_list_ignores_the_api_only_parameters(client, viewer):
    IncidentFactory(title="a")
    client.force_login(viewer)
    response = client.get("/?ordering=bogus&open=maybe&detection_source=nope")
    assert response.status_code == 200


def test_api_filters_by_target(viewer_api):
    target = TargetDatabaseFactory()
    hit = IncidentTargetFactory(target=target).incident
    IncidentFactory(title="elsewhere")
    response = viewer_api.get(f"/api/v1/incidents/?target={target.pk}")
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [hit.pk]


@pytest.mark.parametrize("value", ["abc", "1.5", "0", str(2**70)])
def test_api_refuses_a_target_that_is_not_an_id(viewer_api, value):
    response = viewer_api.get(f"/api/v1/incidents/?target={value}")
    assert response.status_code == 400
    assert "target" in response.json()["errors"]
