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
from tests.factories import CheckResultFactory, DiagnosticRunFactory, UserFactory


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
    verifies_definition = True  # an index that exists stays: one pass verifies it

    def run(self, session):
        name = self.thresholds["index"]
        found = session.scalar("SELECT count(*) FROM pg_indexes WHERE indexname = %s", (name,))
        if found:
            return CheckOutcome(CheckStatus.OK, f"index {name} exists")
        return CheckOutcome(CheckStatus.CRITICAL, f"index {name} is missing")


class IndexStillThere(IndexExists):
    """The same probe judged as a state (like "no blocking chain"): it must keep passing."""

    key = "pm_test_index_state"
    verifies_definition = False


@pytest.fixture
def index_check():
    registry.register(IndexExists)
    yield IndexExists
    registry.unregister(IndexExists.key)


@pytest.fixture
def state_check():
    registry.register(IndexStillThere)
    yield IndexStillThere
    registry.unregister(IndexStillThere.key)


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


def _generous_timeouts(settings):
    settings.QUELL_DIAGNOSTICS_CONNECT_TIMEOUT_S = 20
    settings.QUELL_DIAGNOSTICS_STATEMENT_TIMEOUT_MS = 30_000
    settings.QUELL_DIAGNOSTICS_LOCK_TIMEOUT_MS = 10_000


def _passing_gate(postmortem, commander, target, check, **extra):
    target.thresholds = {check.key: {"index": "timeline_incident_time"}}
    target.save()
    return _item(
        postmortem,
        commander,
        title="Keep the blocking chain from coming back",
        category="monitoring",
        check_target=target,
        check_key=check.key,
        **extra,
    )


def _back_in_time(item, minutes):
    """Pretend the series of passes began `minutes` ago (and the run that began it)."""
    earlier = item.passing_since - datetime.timedelta(minutes=minutes)
    ActionItem.objects.filter(pk=item.pk).update(passing_since=earlier)
    from diagnostics.models import DiagnosticRun

    DiagnosticRun.objects.filter(pk=item.verification_run_id).update(started_at=earlier)


def test_a_state_check_must_keep_passing_over_the_window_before_the_item_closes(
    postmortem, commander, state_check, target, django_capture_on_commit_callbacks, settings
):
    _generous_timeouts(settings)
    item = _passing_gate(postmortem, commander, target, state_check)
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=item.pk, actor=commander)
    item.refresh_from_db()
    # One pass is the momentary absence of the symptom, not a verified fix.
    assert item.status == ActionStatus.OPEN
    assert item.verification_status == "holding" and item.is_holding
    assert item.passing_since == item.verification_run.started_at
    event = TimelineEvent.objects.filter(
        incident=postmortem.incident, message__startswith="Action item check passed"
    ).get()
    assert "it must go on passing until" in event.message

    # Asking again within the window runs the check, passes, and still holds.
    first_pass = item.passing_since
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=item.pk, actor=commander)
    item.refresh_from_db()
    assert item.status == ActionStatus.OPEN and item.passing_since == first_pass
    # The sweep leaves it alone until the window is up...
    with django_capture_on_commit_callbacks(execute=True):
        tasks.settle_action_item_verifications()
    item.refresh_from_db()
    assert item.is_holding

    # ...then runs the check again and closes the item on behalf of whoever asked.
    _back_in_time(item, 11)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.settle_action_item_verifications()
    item.refresh_from_db()
    assert item.status == ActionStatus.DONE, item.verification_summary
    assert item.verification_status == "ok" and item.completed_by == commander
    assert TimelineEvent.objects.filter(
        incident=postmortem.incident, message__contains="passed for 10 min"
    ).exists()


def test_a_failure_in_the_window_starts_it_again(
    postmortem, commander, state_check, target, django_capture_on_commit_callbacks, settings
):
    _generous_timeouts(settings)
    item = _passing_gate(postmortem, commander, target, state_check)
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=item.pk, actor=commander)
    item.refresh_from_db()
    _back_in_time(item, 11)
    item.refresh_from_db()
    # Another run of the same check on the target (an incident's, say) failed in between.
    meanwhile = item.passing_since + datetime.timedelta(minutes=5)
    CheckResultFactory(
        run=DiagnosticRunFactory(
            target=target,
            status="succeeded",
            queued_at=meanwhile,
            started_at=meanwhile,
            finished_at=meanwhile,
        ),
        key=state_check.key,
        status="critical",
        summary="index is missing",
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.settle_action_item_verifications()
    item.refresh_from_db()
    assert item.status == ActionStatus.OPEN and item.is_holding
    assert item.passing_since == item.verification_run.started_at  # a new series

    # A failing verification ends the series outright.
    target.thresholds = {state_check.key: {"index": "no_such_index_anywhere"}}
    target.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=item.pk, actor=commander)
    item.refresh_from_db()
    assert item.verification_status == "critical" and item.passing_since is None


def test_an_item_sets_its_own_window(
    postmortem, commander, state_check, index_check, target, django_capture_on_commit_callbacks,
    settings,
):  # fmt: skip
    _generous_timeouts(settings)
    once = _passing_gate(postmortem, commander, target, state_check, hold_minutes=0)
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=once.pk, actor=commander)
    once.refresh_from_db()
    assert once.status == ActionStatus.DONE

    # A definition check needs one pass unless the item asks for a window.
    held = _passing_gate(postmortem, commander, target, index_check, hold_minutes=30)
    with django_capture_on_commit_callbacks(execute=True):
        services.action_item_complete(action_item_id=held.pk, actor=commander)
    held.refresh_from_db()
    assert held.is_holding

    for bad in (-1, 7 * 24 * 60 + 1, "10", True):
        with pytest.raises(services.PostmortemError, match="must hold for 0 to") as caught:
            _item(postmortem, commander, hold_minutes=bad)
        assert caught.value.field == "hold_minutes"
