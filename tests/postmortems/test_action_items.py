"""Action items: create/edit, overdue list and reminders, and the diagnostic check gate."""

import datetime

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from diagnostics.checks import Check, CheckOutcome, CheckStatus, Family, registry
from diagnostics.services import target_create
from incidents.models import TimelineEvent
from postmortems import selectors, services, tasks
from postmortems.models import ActionItem, ActionStatus
from tests.factories import UserFactory


def _item(postmortem, actor, **extra):
    values = {"title": "Alert on replication lag", "category": "monitoring", "owner": actor}
    values.update(extra)
    return services.action_item_create(postmortem_id=postmortem.pk, actor=actor, **values)


def test_create_validates_and_records_on_the_timeline(postmortem, commander):
    item = _item(
        postmortem,
        commander,
        due_date=datetime.date(2030, 1, 31),
        tracker_url="https://tracker.example.com/OPS-12",
    )
    assert item.status == ActionStatus.OPEN
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, message__startswith="Action item added: Alert on"
    ).exists()
    with pytest.raises(services.PostmortemError) as caught:
        _item(postmortem, commander, category="astrology")
    assert caught.value.field == "category"
    with pytest.raises(services.PostmortemError) as caught:
        _item(postmortem, commander, tracker_url="javascript:alert(1)")
    assert caught.value.field == "tracker_url"
    with pytest.raises(services.PostmortemError) as caught:
        _item(postmortem, commander, title="  ")
    assert caught.value.field == "title"


def test_plain_item_completes_at_once_and_can_be_reopened(postmortem, commander):
    item = _item(postmortem, commander)
    done = services.action_item_complete(action_item_id=item.pk, actor=commander)
    assert done.status == ActionStatus.DONE and done.completed_by == commander
    reopened = services.action_item_update(
        action_item_id=item.pk, actor=commander, status="in_progress"
    )
    assert reopened.status == ActionStatus.IN_PROGRESS and reopened.completed_at is None


def test_overdue_list_and_daily_reminder(postmortem, commander, django_capture_on_commit_callbacks):
    today = timezone.localdate()
    owner = UserFactory(username="owner", role="responder")
    late = _item(postmortem, commander, owner=owner, due_date=today - datetime.timedelta(days=3))
    _item(postmortem, commander, title="Later", owner=owner, due_date=today + datetime.timedelta(1))
    finished = _item(
        postmortem,
        commander,
        title="Done one",
        owner=owner,
        due_date=today - datetime.timedelta(days=9),
    )
    services.action_item_complete(action_item_id=finished.pk, actor=commander)
    assert list(selectors.action_item_list(overdue=True)) == [late]
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.remind_overdue_action_items() == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.remind_overdue_action_items() == 0  # once a day
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@example.com"]
    assert "Alert on replication lag" in message.body
    assert "3 days late" in message.body
    assert "Done one" not in message.body


class IndexExists(Check):
    """Test check: OK when the index named in thresholds["index"] exists on the target."""

    key = "pm_test_index_exists"
    title = "Index exists"
    family = Family.MAINTENANCE
    default_thresholds = {"index": ""}

    def run(self, session):
        name = self.thresholds["index"]
        found = session.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = %s", (name,))
        if found:
            return CheckOutcome(CheckStatus.OK, f"index {name} exists")
        return CheckOutcome(CheckStatus.CRITICAL, f"index {name} is missing")


@pytest.fixture
def index_check():
    registry.register(IndexExists)
    yield IndexExists
    registry.unregister(IndexExists.key)


@pytest.fixture
def target(db):
    settings_dict = connection.settings_dict
    return target_create(
        name="orders-db",
        environment="staging",
        host=settings_dict.get("HOST") or "127.0.0.1",
        port=int(settings_dict.get("PORT") or 5432),
        database=settings_dict["NAME"],
        user=settings_dict.get("USER") or "postgres",
        password=settings_dict.get("PASSWORD") or "",
        sslmode="disable",
        thresholds={"pm_test_index_exists": {"index": "no_such_index_anywhere"}},
    )


def test_gated_item_is_done_only_when_its_check_passes(
    postmortem, commander, index_check, target, django_capture_on_commit_callbacks, settings
):
    # Generous bounds: a loaded CI machine must not turn "missing" into a timeout error.
    settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S = 20
    settings.QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS = 30_000
    settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS = 10_000
    item = _item(
        postmortem,
        commander,
        title="Index orders by customer",
        category="performance",
        check_target=target,
        check_key=index_check.key,
    )
    # The worker (eager here) runs the check; the settle task applies the verdict.
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=item.pk, actor=commander)
    item.refresh_from_db()
    assert item.status == ActionStatus.OPEN
    assert item.verification_status == "critical", item.verification_summary
    assert "missing" in item.verification_summary
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, message__startswith="Action item not done"
    ).exists()

    # The index now "exists" (one the migrations created): trying again closes the item.
    target.thresholds = {index_check.key: {"index": "timeline_incident_time"}}
    target.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_update(action_item_id=item.pk, actor=commander, status="done")
    item.refresh_from_db()
    assert item.verification_status == "ok", item.verification_summary
    assert item.status == ActionStatus.DONE
    assert item.completed_by == commander
    assert item.verification_run.results.get(key=index_check.key).status == "ok"


def test_gate_refuses_unknown_checks_and_half_gates(postmortem, commander, target):
    with pytest.raises(services.PostmortemError, match="Unknown diagnostic check"):
        _item(postmortem, commander, check_target=target, check_key="no_such_check")
    with pytest.raises(services.PostmortemError, match="both a target"):
        _item(postmortem, commander, check_key="dead_tuples")


def test_database_refuses_a_gated_item_marked_done_without_passing_check(
    postmortem, commander, target
):
    from django.db import IntegrityError, transaction

    item = _item(postmortem, commander, check_target=target, check_key="dead_tuples")
    with pytest.raises(IntegrityError), transaction.atomic():
        ActionItem.objects.filter(pk=item.pk).update(status="done")
