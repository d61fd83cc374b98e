"""Who may grant which role (issue 10, item 1): a responder cannot crown themselves Incident
Commander, nor take the roles that publish or remediate; the IC hands over; every path (API,
web page, admin, service) applies the one rule, and the timeline says who granted what."""

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from diagnostics.remediation.services import may_remediate
from incidents import services
from incidents.models import EventKind, ResponderAssignment
from incidents.permissions import user_commands_incident
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def roles(pk):
    return f"/api/v1/incidents/{pk}/roles/"


def _active(incident, role):
    return ResponderAssignment.objects.get(incident=incident, role=role, relieved_at=None)


@pytest.fixture
def with_ic(incident, commander):
    """The incident with `commander` as its Incident Commander (assigned by Quell itself)."""
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=commander)
    return incident


# --- the attack: a responder crowning themselves -----------------------------------------------


def test_responder_cannot_crown_themselves_incident_commander(responder_api, responder, with_ic):
    response = responder_api.post(
        roles(with_ic.pk), {"role": "incident_commander", "user": responder.pk}
    )
    assert response.status_code == 403
    assert "commander, an admin or the current Incident Commander" in response.json()["detail"]
    assert _active(with_ic, "incident_commander").user.username == "commander"
    assert not user_commands_incident(responder, with_ic)


def test_responder_cannot_take_the_ic_of_an_incident_without_one(
    responder_api, responder, incident
):
    response = responder_api.post(
        roles(incident.pk), {"role": "incident_commander", "user": responder.pk}
    )
    assert response.status_code == 403
    assert not incident.assignments.exists()


@pytest.mark.parametrize(
    ("role", "why"),
    [("communications_lead", "publishes"), ("technical_lead", "may remediate")],
)
def test_responder_cannot_take_a_role_with_rights(responder_api, responder, incident, role, why):
    response = responder_api.post(roles(incident.pk), {"role": role, "user": responder.pk})
    assert response.status_code == 403
    assert why in response.json()["detail"]
    assert "Incident Commander may assign" in response.json()["detail"]
    assert not incident.assignments.exists()


@pytest.mark.parametrize(
    "payload",
    [{"role": "operations_lead"}, {"role": "other", "role_name": "Scribe"}],
)
def test_responder_may_volunteer_for_the_other_roles(responder_api, responder, incident, payload):
    response = responder_api.post(roles(incident.pk), {**payload, "user": responder.pk})
    assert response.status_code == 201, response.json()


def test_ic_hands_over_and_loses_the_call(responder_api, responder, incident):
    successor = UserFactory(username="rita", role="responder")
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=responder)
    response = responder_api.post(
        roles(incident.pk), {"role": "incident_commander", "user": successor.pk}
    )
    assert response.status_code == 201, response.json()
    assert _active(incident, "incident_commander").user == successor
    # The old IC is now an ordinary responder: taking the role back is refused.
    again = responder_api.post(
        roles(incident.pk), {"role": "incident_commander", "user": responder.pk}
    )
    assert again.status_code == 403
    event = incident.timeline.filter(kind=EventKind.ROLE_ASSIGNED).last()
    assert (
        event.message
        == "rita is now Incident Commander (replacing responder), assigned by responder"
    )
    assert event.actor == responder
    assert event.data["granted_by_id"] == responder.pk
    assert event.data["user_id"] == successor.pk
    assert event.data["replaced_username"] == "responder"


@pytest.mark.parametrize("role", ["technical_lead", "communications_lead"])
def test_responder_ic_grants_the_leads(responder_api, responder, incident, role):
    lead = UserFactory(username="tomas", role="responder")
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=responder)
    response = responder_api.post(roles(incident.pk), {"role": role, "user": lead.pk})
    assert response.status_code == 201, response.json()


def test_technical_lead_may_remediate_and_loses_it_when_relieved(incident, responder, commander):
    assert not may_remediate(responder, incident=incident)
    lead = services.role_assign(
        incident_id=incident.pk, role="technical_lead", user=responder, actor=commander
    )
    assert may_remediate(responder, incident=incident)
    services.role_relieve(assignment_id=lead.pk, actor=commander)
    assert not may_remediate(responder, incident=incident)


def test_operations_lead_carries_no_remediation(incident, responder):
    services.role_assign(incident_id=incident.pk, role="operations_lead", user=responder)
    assert not may_remediate(responder, incident=incident)


# --- relieving ---------------------------------------------------------------------------------


def test_responder_cannot_relieve_the_ic(responder_api, with_ic):
    ic = _active(with_ic, "incident_commander")
    response = responder_api.post(f"{roles(with_ic.pk)}{ic.pk}/relieve/")
    assert response.status_code == 403
    ic.refresh_from_db()
    assert ic.is_active


def test_anyone_may_step_down_from_their_own_role(responder_api, responder, incident, commander):
    lead = services.role_assign(
        incident_id=incident.pk, role="communications_lead", user=responder, actor=commander
    )
    response = responder_api.post(f"{roles(incident.pk)}{lead.pk}/relieve/")
    assert response.status_code == 200
    event = incident.timeline.filter(kind=EventKind.ROLE_RELIEVED).last()
    assert event.message == "responder relieved as Communications Lead (stepped down)"


def test_relieving_records_who_relieved_whom(incident, responder, commander):
    lead = services.role_assign(
        incident_id=incident.pk, role="technical_lead", user=responder, actor=commander
    )
    services.role_relieve(assignment_id=lead.pk, actor=commander)
    event = incident.timeline.filter(kind=EventKind.ROLE_RELIEVED).last()
    assert event.message == "responder relieved as Technical Lead by commander"
    assert event.data["user_id"] == responder.pk
    assert event.data["relieved_by_id"] == commander.pk


def test_service_refuses_without_a_view_in_between(incident, responder):
    with pytest.raises(PermissionDenied, match="Incident Commander"):
        services.role_assign(
            incident_id=incident.pk, role="incident_commander", user=responder, actor=responder
        )


# --- web page ----------------------------------------------------------------------------------


def _client(client, user):
    client.force_login(user)
    return client


def test_web_page_offers_only_the_roles_the_user_may_grant(client, responder, with_ic):
    html = _client(client, responder).get(reverse("incidents:detail", args=[with_ic.pk]))
    html = html.content.decode()
    assert 'value="operations_lead"' in html and 'value="other"' in html
    for role in ("incident_commander", "technical_lead", "communications_lead"):
        assert f'value="{role}"' not in html
    # No Relieve button for somebody else's IC role.
    assert "Relieve commander as Incident Commander" not in html


def test_web_page_offers_every_role_to_the_ic(client, commander, with_ic):
    html = _client(client, commander).get(reverse("incidents:detail", args=[with_ic.pk]))
    html = html.content.decode()
    for role in ("incident_commander", "technical_lead", "communications_lead"):
        assert f'value="{role}"' in html
    assert "Relieve commander as Incident Commander" in html


def test_web_post_of_a_hidden_role_is_403_with_the_reason(client, responder, with_ic):
    response = _client(client, responder).post(
        reverse("incidents:role-assign", args=[with_ic.pk]),
        {"role": "incident_commander", "user": responder.pk},
        HTTP_HX_REQUEST="true",
        HTTP_HX_TARGET="incident-body",
    )
    assert response.status_code == 403
    assert "current Incident Commander (handing over)" in response.content.decode()
    assert _active(with_ic, "incident_commander").user.username == "commander"


def test_web_relieve_of_the_ic_by_a_responder_is_403(client, responder, with_ic):
    ic = _active(with_ic, "incident_commander")
    response = _client(client, responder).post(
        reverse("incidents:role-relieve", args=[with_ic.pk, ic.pk])
    )
    assert response.status_code == 403
    ic.refresh_from_db()
    assert ic.is_active


# --- admin -------------------------------------------------------------------------------------


def test_admin_inline_applies_the_same_rule(client, with_ic):
    from tests.incidents.test_admin import _change_post, _inline_prefixes, _messages, change_url

    staff_responder = UserFactory(username="sam", role="responder", is_staff=True)
    _client(client, staff_responder)
    page = client.get(change_url(with_ic.pk))
    assign = _inline_prefixes(page)[1]
    response, _ = _change_post(
        client,
        with_ic,
        **{
            f"{assign}-TOTAL_FORMS": "1",
            f"{assign}-0-role": "incident_commander",
            f"{assign}-0-role_name": "",
            f"{assign}-0-user": str(staff_responder.pk),
        },
    )
    assert any("Role not assigned" in m and "Incident Commander" in m for m in _messages(response))
    assert _active(with_ic, "incident_commander").user.username == "commander"
