"""Drafts on resolution, optimistic concurrency, the draft -> review -> published lifecycle."""

import datetime

import pytest
from django.utils import timezone

from incidents import services as incident_services
from incidents.models import EventKind, Status, TimelineEvent
from postmortems import services
from postmortems.models import Postmortem, PostmortemRevision, PostmortemStatus


def test_resolving_an_incident_creates_its_postmortem_draft(resolved_incident):
    postmortem = Postmortem.objects.get(incident=resolved_incident)
    assert postmortem.status == PostmortemStatus.DRAFT
    assert postmortem.version == 1
    assert postmortem.title == resolved_incident.title
    assert "- Users affected: 30%" in postmortem.impact
    assert postmortem.review_due_at is not None  # SEV2: five business days
    assert PostmortemRevision.objects.filter(postmortem=postmortem, version=1).exists()
    assert TimelineEvent.objects.filter(
        incident=resolved_incident, kind=EventKind.POSTMORTEM, message__contains="draft opened"
    ).exists()
    # Key events are pre-selected for the report's timeline; the full log stays on the incident.
    declared = TimelineEvent.objects.get(incident=resolved_incident, kind=EventKind.DECLARED)
    assert str(declared.pk) in postmortem.timeline_selection


def test_sev4_resolution_creates_no_draft_by_default(incident_factory, resolve, commander):
    incident = resolve(incident_factory(severity="SEV4", staffed=False), commander)
    assert not Postmortem.objects.filter(incident=incident).exists()
    # ...but one can be started by hand, without a review deadline.
    postmortem = services.postmortem_create(incident_id=incident.pk, actor=commander)
    assert postmortem.review_due_at is None


def test_sev4_drafts_are_configurable(settings, incident_factory, resolve, commander):
    settings.QUELL_POSTMORTEM_SEVERITIES = ["SEV1", "SEV2", "SEV3", "SEV4"]
    incident = resolve(incident_factory(severity="SEV4", staffed=False), commander)
    assert Postmortem.objects.filter(incident=incident).exists()


def test_create_refuses_an_open_incident(incident_factory, commander):
    incident = incident_factory()
    with pytest.raises(services.PostmortemError, match="once it is resolved"):
        services.postmortem_create(incident_id=incident.pk, actor=commander)


def test_data_impact_is_prefilled_from_integrity_events(incident_factory, resolve, commander):
    incident = incident_factory()
    incident_services.timeline_append(
        incident_id=incident.pk,
        kind=EventKind.INTEGRITY,
        message="orders without customer: 12 before, 0 after",
        actor_label="integrity",
    )
    incident = resolve(incident, commander)
    assert "orders without customer: 12 before, 0 after" in incident.postmortem.data_impact


def test_save_bumps_version_and_keeps_a_revision(postmortem, commander):
    saved = services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Checkout timed out.\r\nFor 40 minutes."},
        actor=commander,
    )
    assert saved.version == 2
    assert saved.summary == "Checkout timed out.\nFor 40 minutes."
    assert PostmortemRevision.objects.get(postmortem=postmortem, version=2).content["summary"]


def test_concurrent_edits_of_different_fields_are_merged(postmortem, commander, responder):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Alice's summary", "root_cause": postmortem.root_cause},
        actor=commander,
    )
    # Bob started from version 1 too, and changed only the root cause.
    merged = services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": postmortem.summary, "root_cause": "Missing index on orders"},
        actor=responder,
    )
    assert merged.version == 3
    assert merged.summary == "Alice's summary"
    assert merged.root_cause == "Missing index on orders"


def test_concurrent_edit_of_the_same_field_is_detected_not_overwritten(
    postmortem, commander, responder
):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Alice's summary"},
        actor=commander,
    )
    with pytest.raises(services.PostmortemConflict) as caught:
        services.postmortem_update(
            postmortem_id=postmortem.pk,
            expected_version=1,
            changes={"summary": "Bob's summary"},
            actor=responder,
        )
    conflict = caught.value
    assert conflict.conflicts == {"summary": "Alice's summary"}
    assert conflict.mine["summary"] == "Bob's summary"
    assert conflict.current.version == 2
    postmortem.refresh_from_db()
    assert postmortem.summary == "Alice's summary"
    assert postmortem.version == 2


def test_timeline_selection_merges_entry_by_entry(postmortem, commander, responder):
    events = list(TimelineEvent.objects.filter(incident=postmortem.incident).order_by("id"))
    first, last = str(events[0].pk), str(events[-1].pk)
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"timeline_selection": {**postmortem.timeline_selection, first: "Paged here"}},
        actor=commander,
    )
    merged = services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"timeline_selection": {**postmortem.timeline_selection, last: "Fixed"}},
        actor=responder,
    )
    assert merged.timeline_selection[first] == "Paged here"
    assert merged.timeline_selection[last] == "Fixed"


def test_timeline_selection_refuses_other_incidents_events(postmortem, incident_factory, commander):
    other = incident_factory(title="Another one", staffed=False)
    foreign = TimelineEvent.objects.filter(incident=other).first()
    with pytest.raises(services.PostmortemError, match="Not events of this incident"):
        services.postmortem_update(
            postmortem_id=postmortem.pk,
            expected_version=1,
            changes={"timeline_selection": {str(foreign.pk): ""}},
            actor=commander,
        )


def test_publish_requires_review_and_content_then_closes_the_incident(postmortem, commander):
    with pytest.raises(services.PostmortemError, match="Submit the postmortem for review"):
        services.postmortem_publish(postmortem_id=postmortem.pk, actor=commander)
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Checkout slow", "impact": "30% of users", "root_cause": ""},
        actor=commander,
    )
    services.postmortem_submit_for_review(postmortem_id=postmortem.pk, actor=commander)
    with pytest.raises(services.PostmortemError, match="needs confirmation") as caught:
        services.postmortem_publish(postmortem_id=postmortem.pk, actor=commander)
    assert caught.value.field == "override"
    assert "the review has not been held" in str(caught.value)
    assert "empty: root cause" in str(caught.value)
    postmortem.refresh_from_db()
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=postmortem.version,
        changes={"root_cause": "A missing index"},
        actor=commander,
    )
    with pytest.raises(services.PostmortemError, match="review has not been held") as caught:
        services.postmortem_publish(postmortem_id=postmortem.pk, actor=commander)
    assert "empty" not in str(caught.value)
    # The review is held: nothing to confirm any more.
    services.review_schedule(
        postmortem_id=postmortem.pk,
        starts_at=timezone.now() + datetime.timedelta(hours=1),
        duration_minutes=30,
        actor=commander,
    )
    review = postmortem.reviews.get()
    # ...an hour later, it took place.
    type(review).objects.filter(pk=review.pk).update(
        starts_at=timezone.now() - datetime.timedelta(hours=1)
    )
    services.review_mark_held(review_id=review.pk, actor=commander)
    published = services.postmortem_publish(postmortem_id=postmortem.pk, actor=commander)
    assert published.status == PostmortemStatus.PUBLISHED
    event = TimelineEvent.objects.filter(incident=published.incident).latest("id")
    assert "overridden" not in event.data
    incident = published.incident
    incident.refresh_from_db()
    assert incident.status == Status.CLOSED
    assert incident.closed_at is not None
    with pytest.raises(services.PostmortemError, match="can no longer be edited"):
        services.postmortem_update(
            postmortem_id=postmortem.pk,
            expected_version=published.version,
            changes={"summary": "late edit"},
            actor=commander,
        )


def test_publish_refuses_when_the_incident_was_reopened(postmortem, commander):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "s", "impact": "i", "root_cause": "r"},
        actor=commander,
    )
    services.postmortem_submit_for_review(postmortem_id=postmortem.pk, actor=commander)
    incident_services.incident_transition(
        incident_id=postmortem.incident_id, to_status="investigating", actor=commander
    )
    with pytest.raises(services.PostmortemError, match="reopened"):
        services.postmortem_publish(postmortem_id=postmortem.pk, actor=commander, override=True)
    postmortem.refresh_from_db()
    assert postmortem.status == PostmortemStatus.IN_REVIEW


def test_publishing_over_concerns_records_who_overrode_what(postmortem, commander):
    services.postmortem_update(
        postmortem_id=postmortem.pk,
        expected_version=1,
        changes={"summary": "Checkout slow", "impact": "", "root_cause": ""},
        actor=commander,
    )
    services.postmortem_submit_for_review(postmortem_id=postmortem.pk, actor=commander)
    published = services.postmortem_publish(
        postmortem_id=postmortem.pk, actor=commander, override=True
    )
    assert published.status == PostmortemStatus.PUBLISHED
    event = TimelineEvent.objects.filter(
        incident=published.incident, message__startswith="Postmortem published"
    ).get()
    assert event.actor == commander
    assert event.message.endswith(
        "published over: the review has not been held; empty: impact, root cause"
    )
    assert event.data["overridden"] == [
        "the review has not been held",
        "empty: impact, root cause",
    ]


def test_waive_needs_a_reason_and_closes_the_incident(postmortem, commander):
    with pytest.raises(services.PostmortemError, match="why"):
        services.postmortem_waive(postmortem_id=postmortem.pk, reason=" ", actor=commander)
    waived = services.postmortem_waive(
        postmortem_id=postmortem.pk, reason="Duplicate of #12", actor=commander
    )
    assert waived.status == PostmortemStatus.WAIVED
    waived.incident.refresh_from_db()
    assert waived.incident.status == Status.CLOSED
    assert TimelineEvent.objects.filter(
        incident=waived.incident, message__contains="Postmortem waived: Duplicate of #12"
    ).exists()


def test_re_resolution_recomputes_the_deadline(postmortem, commander, resolve, settings):
    settings.QUELL_REVIEW_POLICY = {
        **settings.QUELL_REVIEW_POLICY,
        "SEV2": {"days": 20, "business": False},
    }
    incident_services.incident_transition(
        incident_id=postmortem.incident_id, to_status="investigating", actor=commander
    )
    before = postmortem.review_due_at
    resolve(postmortem.incident, commander)
    postmortem.refresh_from_db()
    assert postmortem.review_due_at > before


def test_regrading_a_resolved_incident_moves_the_review_deadline(
    postmortem, commander, django_capture_on_commit_callbacks, settings
):
    settings.QUELL_REVIEW_POLICY = {
        **settings.QUELL_REVIEW_POLICY,
        "SEV1": {"days": 1, "business": False},
    }
    before = postmortem.review_due_at
    with django_capture_on_commit_callbacks(execute=True):
        incident_services.incident_change_severity(
            incident_id=postmortem.incident_id, severity="SEV1", actor=commander
        )
    postmortem.refresh_from_db()
    assert postmortem.review_due_at < before
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, message__startswith="Post-incident review deadline is now"
    ).exists()
