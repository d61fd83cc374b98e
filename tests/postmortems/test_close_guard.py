"""An incident closes when its postmortem is published or waived, whichever way it is asked."""

import pytest

from incidents import services as incident_services
from incidents.services import InvalidTransition
from incidents.severity import Severity
from postmortems import services

pytestmark = pytest.mark.django_db


def test_closing_a_resolved_sev2_without_its_postmortem_is_refused(
    incident_factory, resolve, commander
):
    incident = resolve(incident_factory(severity=Severity.SEV2), commander)
    with pytest.raises(InvalidTransition, match="postmortem is draft"):
        incident_services.incident_transition(
            incident_id=incident.pk, to_status="closed", actor=commander
        )
    incident.refresh_from_db()
    assert incident.status == "resolved"


def test_api_close_answers_400_naming_the_postmortem(
    incident_factory, resolve, commander, commander_api
):
    incident = resolve(incident_factory(severity=Severity.SEV1), commander)
    response = commander_api.post(
        f"/api/v1/incidents/{incident.pk}/transition/", {"status": "closed"}, format="json"
    )
    assert response.status_code == 400
    assert "published or waived" in response.json()["errors"]["status"][0]


def test_waiving_the_postmortem_closes_the_incident(incident_factory, resolve, commander):
    incident = resolve(incident_factory(severity=Severity.SEV2), commander)
    services.postmortem_waive(
        postmortem_id=incident.postmortem.pk, reason="Duplicate of #1", actor=commander
    )
    incident.refresh_from_db()
    assert incident.status == "closed"


def test_sev4_without_a_postmortem_closes_freely(incident_factory, resolve, commander):
    incident = resolve(incident_factory(severity=Severity.SEV4, staffed=False), commander)
    incident_services.incident_transition(
        incident_id=incident.pk, to_status="closed", actor=commander
    )
    incident.refresh_from_db()
    assert incident.status == "closed"


def test_sev2_without_any_postmortem_is_refused_with_how_to_proceed(make_bare_incident):
    incident = make_bare_incident(severity="SEV2", status="resolved")
    with pytest.raises(InvalidTransition, match="has none yet"):
        incident_services.incident_transition(incident_id=incident.pk, to_status="closed")


@pytest.fixture
def make_bare_incident(db):
    from tests.factories import IncidentFactory

    return lambda **fields: IncidentFactory(**fields)
