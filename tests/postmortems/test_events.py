"""postmortems.events: each function records its kind, message and data on the timeline."""

import datetime

import pytest

from incidents.models import EventKind
from postmortems import events
from postmortems.models import PostmortemStatus
from tests.factories import (
    ActionItemFactory,
    IncidentFactory,
    PostmortemFactory,
    ReviewFactory,
    TargetDatabaseFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = datetime.datetime(2026, 3, 10, 14, 5, tzinfo=datetime.UTC)


def _postmortem(**kwargs):
    incident = IncidentFactory(severity="SEV2", resolved_at=NOW - datetime.timedelta(hours=1))
    return PostmortemFactory(incident=incident, **kwargs)


def test_created_says_when_the_review_is_due(settings):
    settings.TIME_ZONE = "UTC"
    user = UserFactory(role="responder")
    postmortem = _postmortem(review_due_at=NOW)
    event = events.postmortem_created_event(postmortem, actor=user)
    assert event.kind == EventKind.POSTMORTEM
    assert event.message == "Postmortem draft opened; review due by 2026-03-10 14:05 UTC"
    assert event.data == {
        "postmortem_id": postmortem.pk,
        "action": "created",
        "review_due_at": NOW.isoformat(),
    }
    assert event.actor == user and event.actor_label == ""

    none_due = events.postmortem_created_event(_postmortem(review_due_at=None))
    assert none_due.message == "Postmortem draft opened; no review required for this severity"
    assert none_due.data["review_due_at"] is None
    assert none_due.actor is None and none_due.actor_label == "postmortems"


def test_deadline_changed_and_missed(settings):
    settings.TIME_ZONE = "UTC"
    postmortem = _postmortem(review_due_at=NOW)
    changed = events.review_deadline_changed_event(postmortem)
    assert changed.message == (
        "Post-incident review deadline is now 2026-03-10 14:05 UTC (SEV2, resolved 2026-03-10)"
    )
    assert changed.data == {"postmortem_id": postmortem.pk, "action": "deadline_changed"}

    missed = events.review_deadline_missed_event(postmortem)
    assert missed.message == (
        "Post-incident review deadline passed (2026-03-10 14:05 UTC) without a review"
    )
    assert missed.data == {"postmortem_id": postmortem.pk, "action": "review_deadline_missed"}


@pytest.mark.parametrize(
    ("status", "reason", "message"),
    [
        (PostmortemStatus.IN_REVIEW, "", "Postmortem submitted for review"),
        (PostmortemStatus.DRAFT, "", "Postmortem returned to draft"),
        (PostmortemStatus.PUBLISHED, "", "Postmortem published"),
        (
            PostmortemStatus.WAIVED,
            "a test restore, no customer impact",
            "Postmortem waived: a test restore, no customer impact",
        ),
    ],
)
def test_status_changed(status, reason, message):
    postmortem = _postmortem(status=status, waived_reason=reason)
    event = events.postmortem_status_changed_event(
        postmortem, from_status=PostmortemStatus.DRAFT, reason=reason
    )
    assert event.kind == EventKind.POSTMORTEM
    assert event.message == message
    assert event.data == {"postmortem_id": postmortem.pk, "from": "draft", "to": status}


def test_action_item_events():
    user = UserFactory(role="responder")
    item = ActionItemFactory(postmortem=_postmortem(), title="Alert on lock waits")
    base = {"postmortem_id": item.postmortem_id, "action_item_id": item.pk}

    added = events.action_item_added_event(item, description="owner alice", actor=user)
    assert added.message == "Action item added: Alert on lock waits (owner alice)"
    assert added.data == {**base, "action": "action_item_added"}

    updated = events.action_item_updated_event(item, changed=["title", "due_date"], actor=user)
    assert updated.message == "Action item updated: Alert on lock waits (due_date, title)"
    assert updated.data == {
        **base,
        "action": "action_item_updated",
        "changed": ["due_date", "title"],
    }

    done = events.action_item_done_event(item, note=" (verified)", actor=user)
    assert done.message == "Action item done: Alert on lock waits (verified)"
    assert done.data == {**base, "action": "action_item_done"}
    assert {added.kind, updated.kind, done.kind} == {EventKind.POSTMORTEM}


def test_action_item_verification_failed():
    target = TargetDatabaseFactory(name="shop")
    item = ActionItemFactory(
        postmortem=_postmortem(), title="Alert", check_target=target, check_key="lock_waits"
    )
    event = events.action_item_verification_failed_event(
        item, run_id=7, check_status="warning", summary="2 waiting"
    )
    assert event.message == (
        "Action item not done: Alert: check lock_waits on shop is WARNING (2 waiting)"
    )
    assert event.data == {
        "postmortem_id": item.postmortem_id,
        "action_item_id": item.pk,
        "action": "action_item_verification_failed",
        "run_id": 7,
        "check_status": "warning",
    }
    assert event.actor_label == "postmortems"


def test_review_events(settings):
    settings.TIME_ZONE = "UTC"
    user = UserFactory(role="commander")
    postmortem = _postmortem(review_due_at=NOW)
    review = ReviewFactory(postmortem=postmortem, starts_at=NOW + datetime.timedelta(days=1))
    base = {
        "postmortem_id": postmortem.pk,
        "review_id": review.pk,
        "starts_at": review.starts_at.isoformat(),
        "sequence": 0,
    }

    scheduled = events.review_scheduled_event(review, invited=4, actor=user)
    assert scheduled.kind == EventKind.POSTMORTEM
    assert scheduled.message == (
        "Post-incident review scheduled for Wed 2026-03-11 14:05 UTC "
        "(after the deadline of Tue 2026-03-10 14:05 UTC); 4 invited"
    )
    assert scheduled.data == {**base, "action": "review_scheduled"}

    moved = events.review_rescheduled_event(
        review, previous=NOW + datetime.timedelta(days=2), actor=user
    )
    assert moved.message.startswith(
        "Post-incident review moved from Thu 2026-03-12 14:05 UTC to Wed 2026-03-11 14:05 UTC"
    )
    assert moved.data["action"] == "review_rescheduled"

    cancelled = events.review_cancelled_event(review, reason="Postmortem waived")
    assert cancelled.message == (
        "Post-incident review of Wed 2026-03-11 14:05 UTC cancelled: Postmortem waived"
    )
    assert cancelled.actor_label == "postmortems"

    held = events.review_held_event(review, actor=user)
    assert (held.message, held.data["action"]) == ("Post-incident review held", "review_held")


def test_review_in_time_has_no_late_note(settings):
    settings.TIME_ZONE = "UTC"
    review = ReviewFactory(
        postmortem=_postmortem(review_due_at=NOW + datetime.timedelta(days=3)),
        starts_at=NOW + datetime.timedelta(days=1),
    )
    event = events.review_scheduled_event(review, invited=1)
    assert event.message == "Post-incident review scheduled for Wed 2026-03-11 14:05 UTC; 1 invited"


def test_review_mail_undelivered_names_who_and_what_to_fix():
    left_out = [{"name": "Bob", "username": "bob", "reason": "response team"}]
    review = ReviewFactory(postmortem=_postmortem(), left_out=left_out, sequence=2)
    event = events.review_mail_undelivered_event(review, what="invitation")
    assert event.message == (
        "Review invitation not delivered: no destination for Bob (response team): "
        "no e-mail address; set it in Admin → Users"
    )
    assert event.data == {
        "postmortem_id": review.postmortem_id,
        "review_id": review.pk,
        "action": "review_invitation_not_delivered",
        "not_delivered": "no destination",
        "left_out": left_out,
        "sequence": 2,
    }
