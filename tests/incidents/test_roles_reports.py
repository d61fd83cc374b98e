"""Roles (assign, replace, relieve, history, missing per policy) and manual reports."""

import pytest
from django.test import override_settings

from incidents import selectors, services
from incidents.models import DetectionSource, EventKind, ResponderRole, Status
from incidents.services import IncidentError
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_assign_role_records_event_and_acknowledges(incident, responder, commander):
    assignment = services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=responder, actor=commander
    )
    assert assignment.is_active
    assert assignment.assigned_by == commander
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None  # an IC taking the incident acknowledges it
    event = incident.timeline.get(kind=EventKind.ROLE_ASSIGNED)
    assert event.message == "responder is now Incident Commander, assigned by commander"
    assert event.actor == commander
    assert event.data["user_id"] == responder.pk
    assert event.data["granted_by"] == "commander"


def test_assign_replaces_holder_and_keeps_history(incident, responder, commander):
    first = services.role_assign(
        incident_id=incident.pk, role="technical_lead", user=responder, actor=commander
    )
    second = services.role_assign(
        incident_id=incident.pk, role="technical_lead", user=commander, actor=commander
    )
    first.refresh_from_db()
    assert first.relieved_at is not None and first.relieved_by == commander
    assert second.is_active
    history = list(selectors.assignment_history(incident_id=incident.pk))
    assert [(a.user.username, a.is_active) for a in history] == [
        ("responder", False),
        ("commander", True),
    ]
    event = incident.timeline.filter(kind=EventKind.ROLE_ASSIGNED).last()
    assert event.message == "commander is now Technical Lead (replacing responder), self-assigned"
    assert event.data["replaced_username"] == "responder"


def test_assign_same_holder_again_changes_nothing(incident, responder):
    a = services.role_assign(incident_id=incident.pk, role="operations_lead", user=responder)
    b = services.role_assign(incident_id=incident.pk, role="operations_lead", user=responder)
    assert a.pk == b.pk
    assert incident.timeline.filter(kind=EventKind.ROLE_ASSIGNED).count() == 1


def test_other_roles_are_told_apart_by_name(incident, responder, commander):
    services.role_assign(incident_id=incident.pk, role="other", role_name="Scribe", user=responder)
    services.role_assign(
        incident_id=incident.pk, role="other", role_name="Database specialist", user=commander
    )
    labels = sorted(a.role_label for a in incident.assignments.filter(relieved_at=None))
    assert labels == ["Database specialist", "Scribe"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"role": "janitor"}, "role"),
        ({"role": "other", "role_name": " "}, "role_name"),
        ({"role": "technical_lead", "user": None}, "user"),
    ],
)
def test_assign_refuses_bad_input(incident, responder, kwargs, field):
    args = {"incident_id": incident.pk, "user": responder, **kwargs}
    with pytest.raises(IncidentError) as exc:
        services.role_assign(**args)
    assert exc.value.field == field


def test_assign_refuses_inactive_user(incident):
    gone = UserFactory(username="gone", is_active=False)
    with pytest.raises(IncidentError, match="active user"):
        services.role_assign(incident_id=incident.pk, role="technical_lead", user=gone)


def test_relieve_ends_assignment_and_role_shows_missing(incident, responder, commander):
    assignment = services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=commander
    )
    relieved = services.role_relieve(assignment_id=assignment.pk, actor=commander)
    assert relieved.relieved_at is not None and relieved.relieved_by == commander
    again = services.role_relieve(assignment_id=assignment.pk, actor=commander)
    assert again.relieved_at == relieved.relieved_at
    assert incident.timeline.filter(kind=EventKind.ROLE_RELIEVED).count() == 1
    fresh = selectors.incident_get(incident_id=incident.pk)
    assert "incident_commander" in selectors.incident_missing_roles(fresh)


def test_relieve_on_closed_incident_is_refused(incident, commander):
    assignment = services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=commander
    )
    services.incident_transition(incident_id=incident.pk, to_status=Status.RESOLVED)
    services.incident_transition(incident_id=incident.pk, to_status=Status.CLOSED)
    with pytest.raises(IncidentError, match="staffing is final"):
        services.role_relieve(assignment_id=assignment.pk)
    assignment.refresh_from_db()
    assert assignment.is_active


def test_relieve_unknown_assignment_is_refused():
    with pytest.raises(IncidentError, match="does not exist"):
        services.role_relieve(assignment_id=424242)


@pytest.mark.parametrize(
    ("severity", "missing"),
    [
        (
            "SEV1",
            ["incident_commander", "technical_lead", "operations_lead", "communications_lead"],
        ),
        (
            "SEV2",
            ["incident_commander", "technical_lead", "operations_lead", "communications_lead"],
        ),
        ("SEV3", ["incident_commander", "technical_lead"]),
        ("SEV4", ["incident_commander"]),
    ],
)
def test_missing_roles_follow_severity_policy(severity, missing):
    incident = services.incident_declare(title="Bloat", severity=severity)
    assert selectors.incident_missing_roles(selectors.incident_get(incident_id=incident.pk)) == (
        missing
    )


def test_missing_roles_shrink_as_roles_are_filled(responder, commander):
    incident = services.incident_declare(title="Deadlocks", severity="SEV3")
    services.role_assign(incident_id=incident.pk, role="technical_lead", user=responder)
    fresh = selectors.incident_get(incident_id=incident.pk)
    assert selectors.incident_missing_roles(fresh) == ["incident_commander"]
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=commander)
    fresh = selectors.incident_get(incident_id=incident.pk)
    assert selectors.incident_missing_roles(fresh) == []


def test_missing_roles_policy_is_configurable():
    with override_settings(QUELL_REQUIRED_ROLES={"SEV4": ["communications_lead"]}):
        incident = services.incident_declare(title="Odd policy", severity="SEV4")
        assert selectors.incident_missing_roles(incident) == [ResponderRole.COMMUNICATIONS_LEAD]


def test_report_without_incident_declares_one(responder):
    incident, event, created = services.report_submit(
        source="user_report",
        summary="Checkout shows other customers' orders",
        details="Seen by three customers since 09:40",
        reporter="support@example.com",
        severity="SEV1",
        kind="data_integrity",
        actor=responder,
    )
    assert created
    assert incident.detection_source == DetectionSource.USER_REPORT
    assert incident.detected_by == "support@example.com"
    assert incident.severity == "SEV1"
    assert incident.title == "Checkout shows other customers' orders"
    kinds = list(incident.timeline.values_list("kind", flat=True))
    assert kinds == [EventKind.DECLARED, EventKind.REPORT]
    assert event.data["reporter"] == "support@example.com"


def test_report_with_open_incident_becomes_a_note(incident, responder):
    same, event, created = services.report_submit(
        source="internal_report",
        summary="Batch job also failing",
        incident_id=incident.pk,
        actor=responder,
    )
    assert not created
    assert same.pk == incident.pk
    assert event.kind == EventKind.REPORT
    assert event.message == "Internal report from responder: Batch job also failing"


@pytest.mark.parametrize("status", [Status.RESOLVED, Status.CLOSED])
def test_report_refuses_incident_that_is_not_open(make_incident, status):
    incident = make_incident(status=status)
    with pytest.raises(IncidentError, match="open incidents only") as exc:
        services.report_submit(source="user_report", summary="again", incident_id=incident.pk)
    assert exc.value.field == "incident"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"source": "monitor"}, "source"), ({"summary": "  "}, "summary")],
)
def test_report_refuses_bad_input(kwargs, field):
    args = {"source": "user_report", "summary": "slow", **kwargs}
    with pytest.raises(IncidentError) as exc:
        services.report_submit(**args)
    assert exc.value.field == field


def test_timeline_append_validates(incident):
    with pytest.raises(IncidentError) as exc:
        services.timeline_append(incident_id=incident.pk, message=" ")
    assert exc.value.field == "message"
    with pytest.raises(IncidentError) as exc:
        services.timeline_append(incident_id=incident.pk, message="x", kind="gossip")
    assert exc.value.field == "kind"
    with pytest.raises(IncidentError) as exc:
        services.timeline_append(incident_id=987654, message="x")
    assert exc.value.field == "incident"


def test_timeline_append_by_other_app_keeps_actor_label(incident):
    event = services.timeline_append(
        incident_id=incident.pk,
        kind=EventKind.DIAGNOSTIC_RUN,
        message="Locks: 3 blocked sessions",
        actor_label="diagnostics",
        data={"run_id": 7},
    )
    assert event.actor_display == "diagnostics"
    assert event.data == {"run_id": 7}
