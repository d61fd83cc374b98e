"""A postmortem action item tied to an integrity check is done only when that check passes;
Quell runs the check when someone tries to close the item."""

import datetime

import pytest

from incidents.models import EventKind, TimelineEvent
from postmortems import services as pm
from postmortems.models import ActionItem, ActionStatus
from tests.diagnostics.integrity.integrity_support import shop_sql
from tests.factories import IncidentFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def postmortem(db):
    from django.utils import timezone

    incident = IncidentFactory(status="resolved", resolved_at=timezone.now())
    return pm.postmortem_create(incident_id=incident.pk)


def test_item_gated_on_an_integrity_check_closes_only_when_it_passes(
    postmortem, shop_db, shop_checks, eager_celery, django_capture_on_commit_callbacks
):
    owner = UserFactory(role="commander")
    check = shop_checks["orphaned profiles"]
    item = pm.action_item_create(
        postmortem_id=postmortem.pk,
        title="Add the missing foreign key on profiles.user_id",
        category="data_integrity",
        actor=owner,
        check_key=check.gate_key,  # the check names its target
    )
    assert item.check_target_id == check.target_id
    with django_capture_on_commit_callbacks(execute=True):
        pm.action_item_complete(action_item_id=item.pk, actor=owner)
    item = pm.action_item_settle_verification(action_item_id=item.pk)
    assert item.status == ActionStatus.OPEN
    assert item.verification_status == "violation"
    assert item.verification_summary == "orphaned profiles: 3 (expected max 0)"
    assert item.verification_integrity_run.check_ids == [check.pk]
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, message__startswith="Action item not done"
    ).exists()
    # The integrity run itself is on the incident's timeline.
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, kind=EventKind.INTEGRITY
    ).exists()

    shop_sql(shop_db, "DELETE FROM profiles WHERE user_id >= 100")
    with django_capture_on_commit_callbacks(execute=True):
        pm.action_item_update(action_item_id=item.pk, actor=owner, status="done")
    item = pm.action_item_settle_verification(action_item_id=item.pk)
    # No orphans now: they must stay gone over the item's window (10 minutes) first.
    assert (item.status, item.verification_status) == (ActionStatus.OPEN, "holding")
    ActionItem.objects.filter(pk=item.pk).update(
        passing_since=item.passing_since - datetime.timedelta(minutes=11)
    )
    with django_capture_on_commit_callbacks(execute=True):
        item = pm.action_item_recheck_if_due(action_item_id=item.pk)
    assert item.is_verifying
    item = pm.action_item_settle_verification(action_item_id=item.pk)
    assert (item.status, item.verification_status) == (ActionStatus.DONE, "ok")
    assert item.completed_by == owner
    assert "orphaned profiles: 0" in item.verification_summary


def test_integrity_gate_refuses_unknown_checks_and_other_targets(postmortem, shop_checks):
    owner = UserFactory(role="commander")
    with pytest.raises(pm.PostmortemError) as caught:
        pm.action_item_create(
            postmortem_id=postmortem.pk,
            title="x",
            category="data_integrity",
            actor=owner,
            check_key="integrity:999999",
        )
    assert caught.value.field == "check_key"
    from tests.diagnostics.records import make_target

    other = make_target(name="other-db")
    with pytest.raises(pm.PostmortemError) as caught:
        pm.action_item_create(
            postmortem_id=postmortem.pk,
            title="x",
            category="data_integrity",
            actor=owner,
            check_target=other,
            check_key=shop_checks["admin users"].gate_key,
        )
    assert caught.value.field == "check_target"
    assert not ActionItem.objects.exists()


def test_action_item_form_offers_integrity_checks(shop_checks):
    from postmortems.forms import ActionItemForm

    form = ActionItemForm()
    keys = [key for key, _label in form.fields["check_key"].choices]
    assert shop_checks["orphaned profiles"].gate_key in keys
    bound = ActionItemForm(
        data={
            "title": "Restore an admin",
            "category": "data_integrity",
            "check_key": shop_checks["admin users"].gate_key,
        }
    )
    assert bound.is_valid(), bound.errors
