import datetime

import pytest

from comms import rendering, selectors, services
from comms.models import Audience, MessageTemplate
from incidents import services as incident_services
from incidents.models import EventKind, Status
from incidents.severity import Severity

pytestmark = pytest.mark.django_db

DEFAULT_KEYS = [d.key for d in rendering.DEFAULT_TEMPLATES]


def test_default_templates_are_installed_by_migration():
    keys = set(MessageTemplate.objects.filter(is_default=True).values_list("key", flat=True))
    assert keys == set(DEFAULT_KEYS)
    assert MessageTemplate.objects.filter(audience=Audience.EXTERNAL).count() == 4


@pytest.mark.parametrize("severity", Severity.values)
@pytest.mark.parametrize("key", DEFAULT_KEYS)
def test_every_default_template_renders_for_every_severity(incident_factory, severity, key):
    incident = incident_factory(
        severity=severity,
        description="Connections to the orders database time out.",
        detected_by="pagerduty",
        users_affected_percent="42.5",
        functionality_impacted="Checkout",
        business_impact="Orders cannot be placed",
    )
    template = MessageTemplate.objects.get(key=key)
    subject, body = services.update_render(incident=incident, template=template)
    assert subject
    assert "{{" not in body and "{%" not in body
    if key == "internal-initial":
        assert f"Severity: {severity}" in body
        assert "Detected By: pagerduty" in body
        assert "42.5% of users affected" in body
        assert "Checkout" in body and "Orders cannot be placed" in body
        assert incident.channel_name in body
        assert "Connections to the orders database time out." in body
    if key in ("external-investigating", "external-monitoring", "external-resolved"):
        assert "Checkout" in body
    if key.startswith("external"):
        # Internal details never reach the public text.
        assert incident.channel_name not in body
        assert "pagerduty" not in body


def test_unknowns_are_marked_for_the_author(incident_factory):
    incident = incident_factory(severity="SEV1")
    template = MessageTemplate.objects.get(key="internal-update")
    _, body = services.update_render(incident=incident, template=template)
    markers = rendering.unfilled_markers(body)
    assert "[TO FILL: planned actions]" in markers
    assert "[TO FILL: connection status, performance metrics, error rates]" in markers
    assert '[TO FILL: ETA if known, or "Under investigation"]' in markers


def test_actions_taken_and_root_cause_come_from_the_timeline(incident_factory, commander):
    incident = incident_factory(severity="SEV2")
    incident_services.timeline_append(
        incident_id=incident.pk,
        kind=EventKind.REMEDIATION,
        message="Cancelled 3 queries running longer than 5 minutes",
        actor=commander,
        data={"counts": {"cancelled": 3}},
    )
    incident_services.timeline_append(
        incident_id=incident.pk,
        kind=EventKind.NOTE,
        message="Root cause found",
        actor=commander,
        data={"root_cause": "A migration dropped the index on orders.customer_id"},
    )
    incident_services.incident_transition(
        incident_id=incident.pk,
        to_status=Status.RESOLVED,
        actor=commander,
        reason="Recreated the index concurrently",
    )
    incident.refresh_from_db()
    template = MessageTemplate.objects.get(key="internal-resolution")
    _, body = services.update_render(incident=incident, template=template)
    assert "Cancelled 3 queries running longer than 5 minutes" in body
    assert "A migration dropped the index on orders.customer_id" in body
    assert "Recreated the index concurrently" in body
    assert "Total Duration:" in body


def test_next_update_time_follows_the_severity_cadence(incident_factory):
    incident = incident_factory(severity="SEV1")
    facts = selectors.incident_facts(incident)
    assert facts.next_update_at is not None
    minutes = (facts.next_update_at - incident.declared_at).total_seconds() / 60
    assert 19 <= minutes <= 21
    sev4 = incident_factory(severity="SEV4", title="Minor blip")
    ctx = rendering.build_context(sev4, selectors.incident_facts(sev4))
    assert ctx["next_update"] == "As significant changes happen"


def test_diagnostics_summary_fills_the_diagnostic_information():
    lines = selectors.diagnostics_summary_lines(
        {
            "targets": [
                {
                    "target_id": 1,
                    "name": "orders-db",
                    "run_id": 7,
                    "run_status": "succeeded",
                    "connection_status": "ok",
                    "worst_status": "critical",
                    "counts": {"ok": 10, "critical": 1},
                    "error_count": 0,
                    "metrics": {"connections": {"active": 95, "max_connections": 100}},
                    "findings": [{"status": "critical", "title": "Locks", "summary": "3 blocked"}],
                    "finished_at": None,
                    "error": "",
                }
            ]
        }
    )
    text = "\n".join(lines)
    assert text == "orders-db, diagnostics:\n  Critical: Locks: 3 blocked."
    assert "active 95" not in text  # raw metric keys are for the run page, not a message


def test_broken_template_is_refused_with_a_field_error(admin_user):
    with pytest.raises(services.CommsError) as exc:
        services.template_save(
            actor=admin_user,
            key="broken",
            name="Broken",
            audience="internal",
            subject="x",
            body="{% for %}",
        )
    assert exc.value.field == "body"


def test_root_cause_and_review_come_from_the_postmortem(incident_factory, commander):
    import datetime

    from django.utils import timezone

    from postmortems.models import Postmortem, Review

    incident = incident_factory(severity="SEV2")
    incident_services.incident_transition(
        incident_id=incident.pk, to_status=Status.RESOLVED, actor=commander
    )
    incident.refresh_from_db()
    postmortem = Postmortem.objects.filter(incident=incident).first() or Postmortem.objects.create(
        incident=incident, title="PM"
    )
    Postmortem.objects.filter(pk=postmortem.pk).update(
        root_cause="Autovacuum fell behind", data_impact="12 orders saved twice"
    )
    starts = timezone.now() + datetime.timedelta(days=2)
    Review.objects.create(postmortem=postmortem, status="scheduled", starts_at=starts)
    template = MessageTemplate.objects.get(key="internal-resolution")
    _, body = services.update_render(incident=incident, template=template)
    assert "Autovacuum fell behind" in body
    assert "Data impact: 12 orders saved twice" in body
    assert rendering.fmt_time(starts) in body


def _event(incident, kind, message, actor, **data):
    return incident_services.timeline_append(
        incident_id=incident.pk, kind=kind, message=message, actor=actor, data=data
    )


def test_actions_taken_lists_what_changed_something_not_notes_clicks_or_failures(
    incident_factory, commander
):
    incident = incident_factory(severity="SEV2")
    _event(incident, EventKind.NOTE, "Looking at the locks", commander)
    _event(incident, EventKind.TRIAGE, "Answered Can connect? Yes", commander)
    _event(incident, EventKind.DIAGNOSTIC_RUN, "Diagnostics failed on shop", commander)
    _event(
        incident,
        EventKind.REMEDIATION,
        "Terminate on shop failed: refused",
        commander,
        error="refused",
    )
    _event(incident, EventKind.REMEDIATION, "Cancel on shop: 0 matched", commander, counts={})
    _event(
        incident,
        EventKind.RUNBOOK_STEP,
        "Runbook started: Locks (4 steps)",
        commander,
        phase="started",
    )
    _event(
        incident,
        EventKind.REMEDIATION,
        "Terminated 1 session (pid 4242)",
        commander,
        counts={"terminated": 1},
    )
    _event(
        incident,
        EventKind.RUNBOOK_STEP,
        "Locks, step 2/4 done: Find the root blocker",
        commander,
        done=True,
    )
    incident_services.incident_transition(
        incident_id=incident.pk,
        to_status=Status.IDENTIFIED,
        actor=commander,
        reason="An idle transaction held a row lock on User",
    )
    actions = selectors.incident_facts(incident).actions
    text = "\n".join(actions)
    assert "Terminated 1 session (pid 4242)" in text
    assert "step 2/4 done" in text
    assert "Status changed from investigating to identified" in text
    for absent in (
        "Looking at the locks",
        "Answered",
        "Diagnostics failed",
        "failed: refused",
        "0 matched",
        "Runbook started",
    ):
        assert absent not in text, absent
    assert len(actions) == 3


def test_the_reason_given_at_identified_is_the_root_cause_of_the_resolution(
    incident_factory, commander
):
    incident = incident_factory(severity="SEV2")
    incident_services.incident_transition(
        incident_id=incident.pk,
        to_status=Status.IDENTIFIED,
        actor=commander,
        reason="An idle transaction held a row lock on User",
    )
    incident_services.incident_transition(
        incident_id=incident.pk,
        to_status=Status.RESOLVED,
        actor=commander,
        reason="Terminated the idle session",
    )
    incident.refresh_from_db()
    template = MessageTemplate.objects.get(key="internal-resolution")
    _, body = services.update_render(incident=incident, template=template)
    assert "An idle transaction held a row lock on User" in body
    assert "[TO FILL: root cause" not in body


def test_diagnostics_are_sentences_worst_first_without_raw_keys():
    finished = datetime.datetime(2026, 3, 1, 10, 0, tzinfo=datetime.UTC)
    lines = selectors.diagnostics_summary_lines(
        {
            "targets": [
                {
                    "target_id": 1,
                    "name": "Demo shop",
                    "run_id": 7,
                    "run_status": "succeeded",
                    "connection_status": "ok",
                    "finished_at": finished,
                    "counts": {"ok": 20, "critical": 1, "warning": 1},
                    "metrics": {"connection": {"uptime_s": 693.5, "connect_ms": 5.03}},
                    "findings": [
                        {
                            "key": "blocking_locks",
                            "title": "Locks and blocking chains",
                            "status": "critical",
                            "summary": "3 sessions blocked (blocks 3 writers), longest wait 2m 10s",
                        },
                        {
                            "key": "long_running_queries",
                            "title": "Long-running queries",
                            "status": "warning",
                            "summary": "1 query running longer than 5m",
                        },
                    ],
                },
                {
                    "target_id": 2,
                    "name": "Reports",
                    "run_id": 8,
                    "run_status": "succeeded",
                    "connection_status": "ok",
                    "finished_at": finished,
                    "counts": {"ok": 22},
                    "findings": [],
                },
            ]
        }
    )
    text = "\n".join(lines)
    assert "uptime s" not in text and "connect ms" not in text and "693.5" not in text
    assert lines[0] == "Demo shop, diagnostics at 2026-03-01 10:00 UTC:"
    assert lines[1] == (
        "  Critical: Locks and blocking chains: 3 sessions blocked (blocks 3 writers), "
        "longest wait 2m 10s."
    )
    assert lines[2].startswith("  Warning: Long-running queries")
    assert "Reports: all 22 checks passed at 2026-03-01 10:00 UTC." in lines
