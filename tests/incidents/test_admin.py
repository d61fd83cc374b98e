"""The Django admin goes through the services and cannot delete or rewrite history."""

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from incidents import services
from incidents.models import EventKind, Incident, ResponderAssignment, Status, TimelineEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:incidents_incident_changelist")


def change_url(pk):
    return reverse("admin:incidents_incident_change", args=[pk])


@pytest.fixture
def staff(client, admin_user):
    client.force_login(admin_user)
    return client


def _messages(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def _management(prefix, total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def _inline_prefixes(response):
    return [f.formset.prefix for f in response.context["inline_admin_formsets"]]


def _change_post(staff, incident, **overrides):
    """POST the change form as the browser would, with the inlines' management data."""
    page = staff.get(change_url(incident.pk))
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        if isinstance(value, bool):
            if value:
                data[name] = "on"
            continue
        data[name] = value
    prefixes = _inline_prefixes(page)
    history, assign, timeline = prefixes
    data.update(
        _management(
            history, initial=incident.assignments.count(), total=incident.assignments.count()
        )
    )
    data.update(_management(assign, total=0))
    data.update(
        _management(timeline, initial=incident.timeline.count(), total=incident.timeline.count())
    )
    data.update(overrides)
    return staff.post(change_url(incident.pk), data), prefixes


def test_changelist_with_filters_and_search_loads(staff, incident):
    services.incident_declare(title="Vacuum stuck", severity="SEV4", kind="performance")
    for query in (
        "",
        "?severity__exact=SEV2",
        "?status__exact=investigating",
        "?kind__exact=performance",
        "?detection_source__exact=internal_report",
        "?open=yes",
        f"?declared_at__year={incident.declared_at.year}",
        "?q=vacuum",
        f"?q=%23{incident.pk}",
    ):
        response = staff.get(CHANGELIST + query)
        assert response.status_code == 200, query
    assert list(staff.get(CHANGELIST + "?q=vacuum").context["cl"].result_list) == [
        Incident.objects.get(title="Vacuum stuck")
    ]
    assert list(staff.get(CHANGELIST + f"?q=%23{incident.pk}").context["cl"].result_list) == [
        incident
    ]


def test_change_form_renders_with_read_only_inlines(staff, incident, commander):
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=commander)
    response = staff.get(change_url(incident.pk))
    assert response.status_code == 200
    form = response.context["adminform"].form
    for locked in ("status", "severity", "declared_at", "resolved_at", "channel_name"):
        assert locked not in form.fields
    assert "title" in form.fields
    history, assign, timeline = response.context["inline_admin_formsets"]
    assert not history.has_add_permission and not history.has_change_permission
    assert not timeline.has_add_permission
    assert not timeline.has_change_permission
    assert not timeline.has_delete_permission
    assert assign.has_add_permission
    assert b"Incident declared" in response.content


def test_saving_details_goes_through_incident_update(staff, incident):
    response, _ = _change_post(staff, incident, scope="orders, payments", title="Orders locked")
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    incident.refresh_from_db()
    assert incident.title == "Orders locked"
    event = incident.timeline.get(kind=EventKind.FIELDS_CHANGED)
    assert set(event.data["changes"]) == {"title", "scope"}


def test_posting_status_or_severity_changes_nothing(staff, incident):
    response, _ = _change_post(staff, incident, status="closed", severity="SEV4")
    assert response.status_code == 302
    incident.refresh_from_db()
    assert (incident.status, incident.severity) == ("investigating", "SEV2")
    assert not incident.timeline.exclude(kind=EventKind.DECLARED).exists()


def test_assigning_a_role_inline_goes_through_role_assign(staff, incident, commander, responder):
    services.role_assign(incident_id=incident.pk, role="technical_lead", user=responder)
    page = staff.get(change_url(incident.pk))
    assign = _inline_prefixes(page)[1]
    response, _ = _change_post(
        staff,
        incident,
        **{
            f"{assign}-TOTAL_FORMS": "1",
            f"{assign}-0-role": "technical_lead",
            f"{assign}-0-role_name": "",
            f"{assign}-0-user": str(commander.pk),
        },
    )
    assert response.status_code == 302
    current = incident.assignments.get(role="technical_lead", relieved_at=None)
    assert current.user == commander
    assert incident.assignments.filter(role="technical_lead").count() == 2  # history kept
    event = incident.timeline.filter(kind=EventKind.ROLE_ASSIGNED).last()
    assert (
        event.message == "commander is now Technical Lead (replacing responder), assigned by admin"
    )


def test_assigning_other_role_without_name_is_a_form_error(staff, incident, commander):
    page = staff.get(change_url(incident.pk))
    assign = _inline_prefixes(page)[1]
    response, _ = _change_post(
        staff,
        incident,
        **{
            f"{assign}-TOTAL_FORMS": "1",
            f"{assign}-0-role": "other",
            f"{assign}-0-user": str(commander.pk),
        },
    )
    assert response.status_code == 200
    assert b"Name the role" in response.content
    assert not ResponderAssignment.objects.exists()


def test_declaring_through_the_admin_uses_incident_declare(staff, admin_user):
    add = reverse("admin:incidents_incident_add")
    assert staff.get(add).status_code == 200
    data = {
        "title": "Primary down",
        "severity": "SEV1",
        "kind": "availability",
        "detection_source": "alert",
        "detected_by": "alertmanager",
        "description": "",
        "scope": "",
        "functionality_impacted": "",
        "business_impact": "",
        "bridge_url": "",
        "reproducible": "unknown",
    }
    page = staff.get(add)
    for prefix in _inline_prefixes(page):
        data.update(_management(prefix))
    response = staff.post(add, data)
    assert response.status_code == 302, response.context["errors"] if response.context else ""
    incident = Incident.objects.get()
    assert incident.channel_name.endswith("-primary-down")
    assert incident.declared_by == admin_user
    assert incident.timeline.get().kind == EventKind.DECLARED


def _run_action(staff, name, incidents):
    return staff.post(
        CHANGELIST,
        {"action": name, "_selected_action": [i.pk for i in incidents]},
        follow=True,
    )


def test_transition_action_uses_service_and_writes_timeline(staff, incident, admin_user):
    response = _run_action(staff, "mark_identified", [incident])
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED
    assert incident.identified_at is not None
    event = incident.timeline.get(kind=EventKind.STATUS_CHANGED)
    assert event.actor == admin_user
    assert event.data["reason"] == "via the admin"
    assert f"Moved to identified: #{incident.pk}." in _messages(response)


def test_transition_action_reports_each_incident(staff, incident, make_incident):
    closed = make_incident(status=Status.CLOSED)
    response = _run_action(staff, "mark_resolved", [incident, closed])
    messages = _messages(response)
    assert f"Moved to resolved: #{incident.pk}." in messages
    assert any(m.startswith(f"#{closed.pk}: Cannot move") for m in messages)
    closed.refresh_from_db()
    assert closed.status == Status.CLOSED


def test_reopen_action_only_reopens_resolved(staff, incident, make_incident):
    resolved = make_incident(status=Status.RESOLVED)
    response = _run_action(staff, "reopen", [incident, resolved])
    resolved.refresh_from_db()
    incident.refresh_from_db()
    assert resolved.status == Status.INVESTIGATING
    assert incident.status == Status.INVESTIGATING
    assert any("only resolved incidents can be reopened" in m for m in _messages(response))


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("mark_monitoring", Status.MONITORING),
        ("mark_resolved", Status.RESOLVED),
    ],
)
def test_other_transition_actions(staff, incident, action, status):
    _run_action(staff, action, [incident])
    incident.refresh_from_db()
    assert incident.status == status


def test_close_action(staff, make_incident):
    resolved = make_incident(status=Status.RESOLVED)
    _run_action(staff, "mark_closed", [resolved])
    resolved.refresh_from_db()
    assert resolved.status == Status.CLOSED
    assert resolved.closed_at is not None


def test_acknowledge_action(staff, incident):
    response = _run_action(staff, "acknowledge", [incident])
    incident.refresh_from_db()
    assert incident.acknowledged_at is not None
    assert f"Acknowledged: #{incident.pk}." in _messages(response)


def test_staff_responder_cannot_transition_unless_ic(client, incident):
    staff_responder = UserFactory(username="staffer", role="responder", is_staff=True)
    client.force_login(staff_responder)
    response = _run_action(client, "mark_identified", [incident])
    incident.refresh_from_db()
    assert incident.status == Status.INVESTIGATING
    assert any("only a commander or its Incident Commander" in m for m in _messages(response))
    services.role_assign(incident_id=incident.pk, role="incident_commander", user=staff_responder)
    _run_action(client, "mark_identified", [incident])
    incident.refresh_from_db()
    assert incident.status == Status.IDENTIFIED


def test_nothing_can_be_deleted(staff, incident, commander):
    assignment = services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=commander
    )
    event = incident.timeline.first()
    for url in (
        reverse("admin:incidents_incident_delete", args=[incident.pk]),
        reverse("admin:incidents_timelineevent_delete", args=[event.pk]),
        reverse("admin:incidents_responderassignment_delete", args=[assignment.pk]),
    ):
        assert staff.get(url).status_code == 403
        assert staff.post(url, {"post": "yes"}).status_code == 403
    response = staff.get(CHANGELIST)
    assert "delete_selected" not in [
        a[0] for a in response.context["action_form"].fields["action"].choices
    ]
    bulk = staff.post(
        CHANGELIST, {"action": "delete_selected", "_selected_action": [incident.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert Incident.objects.filter(pk=incident.pk).exists()
    assert TimelineEvent.objects.filter(pk=event.pk).exists()


def test_timeline_admin_is_read_only(staff, incident):
    event = incident.timeline.first()
    changelist = reverse("admin:incidents_timelineevent_changelist")
    assert staff.get(changelist + "?kind__exact=declared").status_code == 200
    assert staff.get(changelist + "?q=declared").status_code == 200
    assert staff.get(reverse("admin:incidents_timelineevent_add")).status_code == 403
    url = reverse("admin:incidents_timelineevent_change", args=[event.pk])
    page = staff.get(url)
    assert page.status_code == 200
    assert page.context["adminform"].form.fields == {}
    staff.post(url, {"message": "rewritten"})
    event.refresh_from_db()
    assert event.message.startswith("Incident declared")


def test_relieve_action_on_assignments(staff, incident, commander):
    assignment = services.role_assign(
        incident_id=incident.pk, role="incident_commander", user=commander
    )
    staff.post(
        reverse("admin:incidents_responderassignment_changelist"),
        {"action": "relieve", "_selected_action": [assignment.pk]},
    )
    assignment.refresh_from_db()
    assert assignment.relieved_at is not None
    assert incident.timeline.filter(kind=EventKind.ROLE_RELIEVED).exists()
