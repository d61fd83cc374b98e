"""The status lifecycle, lifecycle stamps, reopen, severity changes and closed-incident refusals."""

import itertools

import pytest
from django.test import override_settings

from incidents import services, signals
from incidents.models import EventKind, Status
from incidents.services import ALLOWED_TRANSITIONS, IncidentConflict, IncidentError

pytestmark = pytest.mark.django_db

LEGAL = [(src, dst) for src, targets in ALLOWED_TRANSITIONS.items() for dst in targets]
ILLEGAL = [
    (src, dst)
    for src, dst in itertools.product(Status.values, Status.values)
    if dst not in ALLOWED_TRANSITIONS[src] and src != dst
]


def test_lifecycle_table_covers_every_status():
    assert set(ALLOWED_TRANSITIONS) == set(Status.values)
    assert ALLOWED_TRANSITIONS[Status.CLOSED] == ()
    assert len(LEGAL) + len(ILLEGAL) + len(Status.values) == 25


@pytest.mark.parametrize(("src", "dst"), LEGAL)
def test_transition_allows(make_incident, commander, src, dst):
    incident = make_incident(status=src)
    moved = services.incident_transition(
        incident_id=incident.pk, to_status=dst, actor=commander, reason="checked"
    )
    assert moved.status == dst
    incident.refresh_from_db()
    assert incident.status == dst
    event = incident.timeline.get()
    assert event.kind == EventKind.STATUS_CHANGED
    assert event.data == {"from": src, "to": dst, "reason": "checked"}
    assert event.actor == commander
    assert event.message == f"Status changed from {src} to {dst}: checked"


@pytest.mark.parametrize(("src", "dst"), ILLEGAL)
def test_transition_refuses(make_incident, commander, src, dst):
    incident = make_incident(status=src)
    with pytest.raises(services.InvalidTransition) as exc:
        services.incident_transition(incident_id=incident.pk, to_status=dst, actor=commander)
    message = str(exc.value)
    assert f"from {src} to {dst}" in message
    allowed = ALLOWED_TRANSITIONS[src]
    if allowed:
        assert f"Allowed from {src}: {', '.join(allowed)}." in message
    else:
        assert "none (closed incidents are final)" in message
    assert exc.value.field == "status"
    incident.refresh_from_db()
    assert incident.status == src
    assert not incident.timeline.exists()


def test_transition_refuses_closed_to_investigating(make_incident, commander):
    incident = make_incident(status=Status.CLOSED)
    with pytest.raises(services.InvalidTransition, match="closed incidents are final"):
        services.incident_transition(
            incident_id=incident.pk, to_status=Status.INVESTIGATING, actor=commander
        )


@pytest.mark.parametrize("status", Status.values)
def test_transition_to_same_status_is_a_conflict(make_incident, commander, status):
    incident = make_incident(status=status)
    with pytest.raises(IncidentConflict, match=f"already {status}"):
        services.incident_transition(incident_id=incident.pk, to_status=status, actor=commander)


def test_transition_refuses_unknown_status(make_incident):
    incident = make_incident()
    with pytest.raises(IncidentError) as exc:
        services.incident_transition(incident_id=incident.pk, to_status="fixed")
    assert exc.value.field == "status"
    assert "investigating" in str(exc.value)


def test_transition_refuses_stale_expected_status(make_incident, commander):
    incident = make_incident(status=Status.IDENTIFIED)
    with pytest.raises(IncidentConflict, match="now identified, not investigating"):
        services.incident_transition(
            incident_id=incident.pk,
            to_status=Status.MONITORING,
            expected_status=Status.INVESTIGATING,
            actor=commander,
        )
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED


def test_transition_of_missing_incident_names_it():
    with pytest.raises(IncidentError, match="Incident 999999 does not exist"):
        services.incident_transition(incident_id=999999, to_status=Status.IDENTIFIED)


def test_lifecycle_stamps_each_time_once(incident, commander):
    assert incident.acknowledged_at is None
    first = services.incident_transition(
        incident_id=incident.pk, to_status=Status.IDENTIFIED, actor=commander
    )
    assert first.acknowledged_at is not None  # working an incident acknowledges it
    assert first.identified_at is not None
    identified_at = first.identified_at
    services.incident_transition(
        incident_id=incident.pk, to_status=Status.INVESTIGATING, actor=commander
    )
    again = services.incident_transition(
        incident_id=incident.pk, to_status=Status.IDENTIFIED, actor=commander
    )
    assert again.identified_at == identified_at  # first identification is kept
    monitoring = services.incident_transition(
        incident_id=incident.pk, to_status=Status.MONITORING, actor=commander
    )
    assert monitoring.mitigated_at is not None
    resolved = services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    assert resolved.resolved_at >= resolved.mitigated_at >= resolved.identified_at
    closed = services.incident_transition(
        incident_id=incident.pk, to_status=Status.CLOSED, actor=commander
    )
    assert closed.closed_at >= closed.resolved_at
    incident.refresh_from_db()
    assert incident.closed_at == closed.closed_at


def test_resolving_directly_stamps_mitigation_too(incident, commander):
    resolved = services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    assert resolved.mitigated_at == resolved.resolved_at


def test_reopen_clears_resolution_and_keeps_history(incident, commander):
    services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    received = []

    def on_reopen(sender, **kwargs):
        received.append(kwargs)

    signals.incident_reopened.connect(on_reopen)
    try:
        reopened = services.incident_transition(
            incident_id=incident.pk,
            to_status=Status.INVESTIGATING,
            actor=commander,
            reason="errors are back",
        )
    finally:
        signals.incident_reopened.disconnect(on_reopen)
    assert reopened.status == Status.INVESTIGATING
    assert reopened.resolved_at is None
    assert reopened.is_open
    moves = [e.data for e in incident.timeline.filter(kind=EventKind.STATUS_CHANGED)]
    assert [(m["from"], m["to"]) for m in moves] == [
        ("investigating", "resolved"),
        ("resolved", "investigating"),
    ]
    # Not in a transaction that commits here (the test's own is rolled back), so the signal
    # is queued for commit rather than sent: see test_concurrency for the after-commit proof.
    assert received == []


def test_severity_change_records_and_adds_bridge(incident, commander):
    with override_settings(QUELL_BRIDGE_URL_TEMPLATE="https://meet.example.com/{slug}"):
        low = services.incident_change_severity(
            incident_id=incident.pk, severity="SEV4", actor=commander, reason="contained"
        )
        assert low.severity == "SEV4"
        sev3 = services.incident_declare(title="Slow reports", severity="SEV3")
        assert sev3.bridge_url == ""
        raised = services.incident_change_severity(
            incident_id=sev3.pk, severity="SEV1", actor=commander
        )
    assert raised.bridge_url == "https://meet.example.com/slow-reports"
    event = incident.timeline.get(kind=EventKind.SEVERITY_CHANGED)
    assert event.data == {"from": "SEV2", "to": "SEV4", "reason": "contained"}


def test_severity_change_to_same_level_records_nothing(incident, commander):
    services.incident_change_severity(incident_id=incident.pk, severity="SEV2", actor=commander)
    assert not incident.timeline.filter(kind=EventKind.SEVERITY_CHANGED).exists()


def test_severity_change_refuses_unknown_level(incident):
    with pytest.raises(IncidentError) as exc:
        services.incident_change_severity(incident_id=incident.pk, severity="SEV9")
    assert exc.value.field == "severity"


def test_declare_sets_channel_bridge_and_first_event(responder):
    with override_settings(QUELL_BRIDGE_URL_TEMPLATE="https://meet.example.com/{slug}-{id}"):
        incident = services.incident_declare(
            title="Replica lag!", severity="SEV1", kind="performance", actor=responder
        )
    day = incident.declared_at.date().isoformat()
    assert incident.channel_name == f"#incident-{day}-replica-lag"
    assert incident.bridge_url == f"https://meet.example.com/replica-lag-{incident.pk}"
    assert incident.detected_by == "responder"
    twin = services.incident_declare(title="Replica lag", severity="SEV4")
    assert twin.channel_name == f"#incident-{day}-replica-lag-2"
    assert twin.bridge_url == ""
    event = incident.timeline.get()
    assert event.kind == EventKind.DECLARED
    assert event.data["channel_name"] == incident.channel_name


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": "  "}, "title"),
        ({"severity": "SEV5"}, "severity"),
        ({"kind": "cosmic"}, "kind"),
        ({"detection_source": "psychic"}, "detection_source"),
        ({"users_affected_percent": 140}, "users_affected_percent"),
    ],
)
def test_declare_refuses_bad_input_with_field(fields, field):
    args = {"title": "Disk full", "severity": "SEV2", **fields}
    with pytest.raises(IncidentError) as exc:
        services.incident_declare(**args)
    assert exc.value.field == field


def test_update_records_old_and_new_values(incident, responder):
    services.incident_update(
        incident_id=incident.pk,
        actor=responder,
        scope="orders, order_items",
        users_affected_percent="12.5",
        title=incident.title,  # unchanged: not recorded
    )
    event = incident.timeline.get(kind=EventKind.FIELDS_CHANGED)
    assert event.data["changes"] == {
        "scope": {"from": "", "to": "orders, order_items"},
        "users_affected_percent": {"from": None, "to": "12.5"},
    }


def test_update_refuses_status_and_severity(incident):
    with pytest.raises(IncidentError, match="Not editable here: severity, status"):
        services.incident_update(incident_id=incident.pk, status="closed", severity="SEV1")


@pytest.mark.parametrize(
    "call",
    [
        lambda i, u: services.incident_update(incident_id=i, actor=u, title="New"),
        lambda i, u: services.incident_change_severity(incident_id=i, severity="SEV1", actor=u),
        lambda i, u: services.role_assign(incident_id=i, role="technical_lead", user=u, actor=u),
        lambda i, u: services.report_submit(
            source="user_report", summary="still broken", incident_id=i, actor=u
        ),
        lambda i, u: services.incident_transition(incident_id=i, to_status="investigating"),
    ],
    ids=["update", "severity", "role", "report", "reopen"],
)
def test_closed_incident_refuses_changes(make_incident, commander, call):
    incident = make_incident(status=Status.CLOSED)
    with pytest.raises(IncidentError):
        call(incident.pk, commander)
    incident.refresh_from_db()
    assert incident.status == Status.CLOSED
    assert incident.severity == "SEV3"
    assert not incident.timeline.exists()
    assert not incident.assignments.exists()


def test_closed_incident_still_takes_notes(make_incident, responder):
    incident = make_incident(status=Status.CLOSED)
    event = services.timeline_append(
        incident_id=incident.pk, message="Correction: started 10:02", actor=responder
    )
    assert event.kind == EventKind.NOTE


def test_acknowledge_stamps_once(incident, responder, commander):
    first = services.incident_acknowledge(incident_id=incident.pk, actor=responder)
    second = services.incident_acknowledge(incident_id=incident.pk, actor=commander)
    assert first.acknowledged_at == second.acknowledged_at
    assert incident.timeline.filter(kind=EventKind.ACKNOWLEDGED).count() == 1


def refuse_every_close(incident):
    return f"Incident #{incident.pk} has unfinished follow-up."


def test_close_guard_objection_refuses_closing_and_names_the_reason(settings, make_incident):
    settings.QUELL_CLOSE_GUARDS = ["tests.incidents.test_lifecycle.refuse_every_close"]
    incident = make_incident(status="resolved")
    with pytest.raises(services.InvalidTransition, match="unfinished follow-up"):
        services.incident_transition(incident_id=incident.pk, to_status="closed")
    incident.refresh_from_db()
    assert incident.status == "resolved"
    assert not incident.timeline.filter(kind="status_changed").exists()
