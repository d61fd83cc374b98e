"""Forms and actions on the incident pages: input kept on error, permissions as in the API,
conflicts reported, htmx answered with fragments."""

import pytest
from django.urls import reverse

from incidents import services
from incidents.models import EventKind, Incident, ResponderAssignment, TimelineEvent

pytestmark = pytest.mark.django_db


def url(name, incident, *extra):
    return reverse(f"incidents:{name}", args=[incident.pk, *extra])


# --- Declare ------------------------------------------------------------------------------


def test_declare_creates_the_incident_and_opens_its_page(responder_client, responder):
    response = responder_client.post(
        reverse("incidents:declare"),
        {
            "title": "Replica lag over 5 minutes",
            "severity": "SEV2",
            "kind": "availability",
            "description": "Reads are stale",
            "detection_source": "user_report",
            "detected_by": "Support desk",
            "confirmed": "on",
            "reproducible": "true",
            "users_affected_percent": "12.5",
            "scope": "orders, order_items",
            "functionality_impacted": "Order history",
            "business_impact": "Customers see old orders",
        },
    )
    incident = Incident.objects.get(title="Replica lag over 5 minutes")
    assert response.status_code == 302
    assert response["Location"] == url("detail", incident)
    assert incident.declared_by == responder
    assert incident.detection_source == "user_report"
    assert incident.detected_by == "Support desk"
    assert incident.confirmed is True and incident.reproducible is True
    assert str(incident.users_affected_percent) == "12.50"
    assert incident.timeline.filter(kind=EventKind.DECLARED).exists()


def test_declare_errors_are_inline_and_nothing_typed_is_lost(responder_client):
    response = responder_client.post(
        reverse("incidents:declare"),
        {
            "title": "",
            "severity": "",
            "kind": "performance",
            "description": "A long description I do not want to type again",
            "detection_source": "internal_report",
            "detected_by": "Night shift",
            "users_affected_percent": "140",
            "scope": "payments table",
            "business_impact": "Refunds delayed",
        },
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert Incident.objects.count() == 0
    assert "This field is required." in html
    assert "Ensure this value is less than or equal to 100." in html
    assert 'aria-invalid="true"' in html
    for kept in (
        "A long description I do not want to type again",
        'value="Night shift"',
        "payments table",
        "Refunds delayed",
        'value="140"',
    ):
        assert kept in html


def test_declare_keeps_the_chosen_severity_after_an_error(responder_client):
    html = responder_client.post(
        reverse("incidents:declare"), {"title": "", "severity": "SEV1", "kind": "other"}
    ).content.decode()
    assert 'value="SEV1" id="id_severity_0" checked' in html


def test_declare_refuses_a_future_detection_time(responder_client):
    response = responder_client.post(
        reverse("incidents:declare"),
        {
            "title": "x",
            "severity": "SEV3",
            "kind": "other",
            "detection_source": "internal_report",
            "detected_at": "2999-01-01T10:00",
        },
    )
    assert response.status_code == 400
    assert b"Detection time cannot be in the future." in response.content


def test_viewer_cannot_declare(viewer_client):
    assert viewer_client.get(reverse("incidents:declare")).status_code == 403
    response = viewer_client.post(
        reverse("incidents:declare"), {"title": "x", "severity": "SEV3", "kind": "other"}
    )
    assert response.status_code == 403
    assert Incident.objects.count() == 0


def test_viewer_sees_no_action_forms(viewer_client, incident):
    html = viewer_client.get(url("detail", incident)).content.decode()
    for action in ("edit", "transition", "severity", "role-assign", "note", "acknowledge"):
        assert url(action, incident) not in html, action
    assert "Declare incident" not in html


# --- Actions and permissions --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("edit", {"title": "x", "kind": "other"}),
        ("note", {"message": "hello"}),
        ("acknowledge", {}),
        ("role-assign", {"role": "technical_lead", "user": "1"}),
        ("transition", {"to_status": "identified", "expected_status": "investigating"}),
        ("severity", {"severity": "SEV1"}),
    ],
)
def test_viewer_actions_are_refused_server_side(viewer_client, incident, name, data):
    before = TimelineEvent.objects.count()
    assert viewer_client.post(url(name, incident), data).status_code == 403
    assert TimelineEvent.objects.count() == before


def test_responder_may_not_change_status_or_severity(responder_client, incident):
    html = responder_client.get(url("detail", incident)).content.decode()
    assert url("transition", incident) not in html
    assert url("severity", incident) not in html
    assert url("role-assign", incident) in html
    response = responder_client.post(
        url("transition", incident), {"to_status": "identified", "expected_status": "investigating"}
    )
    assert response.status_code == 403
    assert responder_client.post(url("severity", incident), {"severity": "SEV1"}).status_code == 403
    incident.refresh_from_db()
    assert incident.status == "investigating" and incident.severity == "SEV2"


def test_responder_who_is_incident_commander_may_transition(responder_client, responder, incident):
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=responder)
    assert (
        url("transition", incident)
        in responder_client.get(url("detail", incident)).content.decode()
    )
    response = responder_client.post(
        url("transition", incident),
        {"to_status": "identified", "expected_status": "investigating", "reason": "Bad plan"},
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "identified"
    event = incident.timeline.filter(kind=EventKind.STATUS_CHANGED).get()
    assert event.data["reason"] == "Bad plan" and event.actor == responder


def test_transition_with_htmx_returns_the_body_fragment(commander_client, incident, htmx_headers):
    response = commander_client.post(
        url("transition", incident),
        {"to_status": "monitoring", "expected_status": "investigating"},
        **htmx_headers(),
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="incident-body"')
    assert "<html" not in html and "<body" not in html
    assert response["HX-Trigger"] == "incidentChanged"
    assert "Status is now monitoring." in html


def test_transition_conflict_is_reported_and_nothing_changes(commander_client, commander, incident):
    # Someone else identified it after this page was loaded.
    services.incident_transition(incident_id=incident.pk, to_status="identified", actor=commander)
    response = commander_client.post(
        url("transition", incident),
        {"to_status": "resolved", "expected_status": "investigating", "reason": "done"},
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "Not applied." in html and "somebody changed it first" in html
    incident.refresh_from_db()
    assert incident.status == "identified"


def test_transition_not_allowed_from_the_current_status_is_a_form_error(
    commander_client, commander, incident, htmx_headers
):
    services.incident_transition(incident_id=incident.pk, to_status="resolved", actor=commander)
    response = commander_client.post(
        url("transition", incident),
        {"to_status": "monitoring", "expected_status": "resolved", "reason": "keep me"},
        **htmx_headers(),
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert "Cannot move incident" in html and "Allowed from resolved" in html
    assert "keep me" in html  # the reason typed is still there


def test_severity_change_records_reason(commander_client, incident):
    response = commander_client.post(
        url("severity", incident), {"severity": "SEV1", "reason": "All users affected"}
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.severity == "SEV1"
    event = incident.timeline.get(kind=EventKind.SEVERITY_CHANGED)
    assert event.data == {"from": "SEV2", "to": "SEV1", "reason": "All users affected"}


def test_severity_change_refuses_unknown_level(commander_client, incident, htmx_headers):
    response = commander_client.post(
        url("severity", incident), {"severity": "SEV9", "reason": "r"}, **htmx_headers()
    )
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content


def test_edit_assessment_records_only_what_changed(responder_client, incident):
    response = responder_client.post(
        url("edit", incident),
        {
            "title": incident.title,
            "kind": "availability",
            "description": incident.description,
            "detected_by": incident.detected_by,
            "scope": "orders",
            "users_affected_percent": "30",
            "reproducible": "false",
        },
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.kind == "availability" and incident.scope == "orders"
    assert incident.reproducible is False
    event = incident.timeline.get(kind=EventKind.FIELDS_CHANGED)
    assert set(event.data["changes"]) == {
        "kind",
        "scope",
        "users_affected_percent",
        "reproducible",
    }


def test_edit_errors_keep_input_and_open_the_form(responder_client, incident, htmx_headers):
    response = responder_client.post(
        url("edit", incident),
        {"title": "", "kind": "other", "scope": "typed scope", "bridge_url": "not a url"},
        **htmx_headers(),
    )
    html = response.content.decode()
    assert response.status_code == 400
    assert '<details class="edit" open>' in html
    assert "typed scope" in html and "Enter a valid URL." in html
    incident.refresh_from_db()
    assert incident.scope == ""


def test_assign_and_relieve_roles(responder_client, responder, other_responder, incident):
    response = responder_client.post(
        url("role-assign", incident), {"role": "operations_lead", "user": other_responder.pk}
    )
    assert response.status_code == 302
    assignment = ResponderAssignment.objects.get(incident=incident, role="operations_lead")
    assert assignment.user == other_responder and assignment.assigned_by == responder
    html = responder_client.get(url("detail", incident)).content.decode()
    assert "Operations Lead" in html and "rita" in html
    response = responder_client.post(url("role-relieve", incident, assignment.pk))
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.relieved_at is not None


def test_assign_other_role_needs_a_name(responder_client, other_responder, incident, htmx_headers):
    response = responder_client.post(
        url("role-assign", incident),
        {"role": "other", "role_name": "", "user": other_responder.pk},
        **htmx_headers(),
    )
    assert response.status_code == 400
    assert b"Name the role" in response.content
    assert not ResponderAssignment.objects.filter(incident=incident).exists()


def test_relieve_of_another_incidents_assignment_is_404(
    responder_client, commander, other_responder, incident
):
    other = services.incident_declare(title="Other", severity="SEV4", actor=commander)
    assignment = services.role_assign(
        incident_id=other.pk, role="technical_lead", user=other_responder
    )
    assert responder_client.post(url("role-relieve", incident, assignment.pk)).status_code == 404


def test_note_is_added_to_the_timeline(responder_client, responder, incident, htmx_headers):
    response = responder_client.post(
        url("note", incident), {"message": "Killed pid 4242"}, **htmx_headers()
    )
    assert response.status_code == 200
    assert b"Killed pid 4242" in response.content
    note = incident.timeline.get(kind=EventKind.NOTE)
    assert note.actor == responder


def test_empty_note_is_a_form_error(responder_client, incident, htmx_headers):
    response = responder_client.post(url("note", incident), {"message": ""}, **htmx_headers())
    assert response.status_code == 400
    assert b"This field is required." in response.content


def test_acknowledge_stamps_once(responder_client, incident):
    responder_client.post(url("acknowledge", incident))
    incident.refresh_from_db()
    first = incident.acknowledged_at
    assert first is not None
    responder_client.post(url("acknowledge", incident))
    incident.refresh_from_db()
    assert incident.acknowledged_at == first


def test_closed_incident_offers_no_actions(commander_client, commander, incident, settings):
    settings.QUELL_CLOSE_GUARDS = []  # closed here without the postmortem flow
    services.incident_transition(incident_id=incident.pk, to_status="resolved", actor=commander)
    services.incident_transition(incident_id=incident.pk, to_status="closed", actor=commander)
    html = commander_client.get(url("detail", incident)).content.decode()
    assert "Closed incidents are final." in html
    for action in ("edit", "transition", "severity", "role-assign"):
        assert url(action, incident) not in html, action
    # A late finding or a correction is still a note on the timeline.
    assert url("note", incident) in html
    response = commander_client.post(url("note", incident), {"message": "Late finding"})
    assert response.status_code == 302
    assert incident.timeline.filter(kind=EventKind.NOTE, message="Late finding").exists()


def test_declare_takes_a_typed_detection_time_with_any_offset(responder_client):
    """The field reads ISO 8601 typed by hand; PostgreSQL refuses offsets past ±15:59 (a 500)."""
    response = responder_client.post(
        reverse("incidents:declare"),
        {
            "title": "Checkout writes time out",
            "severity": "SEV2",
            "kind": "other",
            "detection_source": "internal_report",
            "detected_at": "2000-01-01T00:00+16:00",
        },
    )
    assert response.status_code == 302, response.content[:2000]
    incident = Incident.objects.get(title="Checkout writes time out")
    assert incident.detected_at.isoformat() == "1999-12-31T08:00:00+00:00"
