"""Business-day arithmetic, deadlines by severity, time zones, DST, and slot proposals."""

import datetime
from zoneinfo import ZoneInfo

import pytest

from postmortems.scheduling import (
    add_business_days,
    holidays,
    is_business_day,
    propose_slot,
    review_deadline,
)

UTC = datetime.UTC
FRI = datetime.date(2026, 3, 6)


def test_add_business_days_skips_the_weekend():
    assert add_business_days(FRI, 1) == datetime.date(2026, 3, 9)  # Monday
    assert add_business_days(FRI, 5) == datetime.date(2026, 3, 13)  # next Friday
    assert add_business_days(datetime.date(2026, 3, 7), 1) == datetime.date(2026, 3, 9)


def test_add_business_days_skips_holidays():
    holiday_set = {datetime.date(2026, 3, 9), datetime.date(2026, 3, 10)}
    assert add_business_days(FRI, 1, holiday_set) == datetime.date(2026, 3, 11)
    assert not is_business_day(datetime.date(2026, 3, 9), holiday_set)
    assert add_business_days(FRI, 0) == FRI


def test_add_business_days_refuses_negative_counts():
    with pytest.raises(ValueError):
        add_business_days(FRI, -1)


def test_holidays_read_from_settings_and_bad_dates_are_refused(settings):
    settings.QUELL_HOLIDAYS = ["2026-12-25", " 2026-12-26 "]
    assert holidays() == {datetime.date(2026, 12, 25), datetime.date(2026, 12, 26)}
    settings.QUELL_HOLIDAYS = ["25/12/2026"]
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="ISO date"):
        holidays()


def test_sev2_deadline_is_five_business_days_end_of_day(settings):
    settings.TIME_ZONE = "UTC"
    resolved = datetime.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # Friday
    due = review_deadline(resolved_at=resolved, severity="SEV2", holiday_set=set())
    assert due == datetime.datetime(2026, 3, 13, 23, 59, 59, tzinfo=UTC)


def test_sev3_deadline_skips_configured_holidays(settings):
    settings.TIME_ZONE = "UTC"
    settings.QUELL_HOLIDAYS = ["2026-03-10"]
    resolved = datetime.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    due = review_deadline(resolved_at=resolved, severity="SEV3")
    # 10 business days from Friday 6 March, one of them a holiday: Monday 23 March.
    assert due.date() == datetime.date(2026, 3, 23)


def test_sev1_deadline_counts_calendar_days_including_weekends(settings):
    settings.TIME_ZONE = "UTC"
    resolved = datetime.datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    due = review_deadline(resolved_at=resolved, severity="SEV1", holiday_set=set())
    assert due == datetime.datetime(2026, 3, 9, 23, 59, 59, tzinfo=UTC)


def test_sev4_has_no_review_deadline():
    resolved = datetime.datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    assert review_deadline(resolved_at=resolved, severity="SEV4") is None


def test_deadline_uses_the_organisation_time_zone(settings):
    # Thursday 23:30 UTC is already Friday morning in Tokyo.
    resolved = datetime.datetime(2026, 3, 5, 23, 30, tzinfo=UTC)
    settings.TIME_ZONE = "UTC"
    in_utc = review_deadline(resolved_at=resolved, severity="SEV2", holiday_set=set())
    settings.TIME_ZONE = "Asia/Tokyo"
    in_tokyo = review_deadline(resolved_at=resolved, severity="SEV2", holiday_set=set())
    assert in_utc.date() == datetime.date(2026, 3, 12)
    assert in_tokyo.astimezone(ZoneInfo("Asia/Tokyo")).date() == datetime.date(2026, 3, 13)
    assert in_tokyo.astimezone(ZoneInfo("Asia/Tokyo")).time() == datetime.time(23, 59, 59)


def test_deadline_across_daylight_saving_start_keeps_local_end_of_day(settings):
    # US clocks go forward on Sunday 8 March 2026: the deadline is 23:59:59 EDT (UTC-4).
    settings.TIME_ZONE = "America/New_York"
    resolved = datetime.datetime(2026, 3, 6, 17, 0, tzinfo=UTC)  # Friday 12:00 EST
    due = review_deadline(resolved_at=resolved, severity="SEV1", holiday_set=set())
    local = due.astimezone(ZoneInfo("America/New_York"))
    assert (local.date(), local.time()) == (datetime.date(2026, 3, 9), datetime.time(23, 59, 59))
    assert local.utcoffset() == datetime.timedelta(hours=-4)
    assert due.astimezone(UTC) == datetime.datetime(2026, 3, 10, 3, 59, 59, tzinfo=UTC)


def test_deadline_across_daylight_saving_end(settings):
    # Europe goes back on Sunday 25 October 2026.
    settings.TIME_ZONE = "Europe/Berlin"
    resolved = datetime.datetime(2026, 10, 23, 10, 0, tzinfo=UTC)  # Friday
    due = review_deadline(resolved_at=resolved, severity="SEV2", holiday_set=set())
    local = due.astimezone(ZoneInfo("Europe/Berlin"))
    assert local.date() == datetime.date(2026, 10, 30)
    assert local.utcoffset() == datetime.timedelta(hours=1)


def test_policy_is_configurable(settings):
    settings.QUELL_REVIEW_POLICY = {"SEV4": {"days": 2, "business": True}}
    resolved = datetime.datetime(2026, 3, 6, 9, 0, tzinfo=UTC)
    due = review_deadline(resolved_at=resolved, severity="SEV4", holiday_set=set())
    assert due.date() == datetime.date(2026, 3, 10)


def test_propose_slot_takes_next_business_day_in_working_hours(settings):
    settings.TIME_ZONE = "Europe/Paris"
    now = datetime.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # Friday
    slot = propose_slot(
        deadline=None, duration=datetime.timedelta(hours=1), now=now, holiday_set=set()
    )
    assert slot == datetime.datetime(2026, 3, 9, 10, 0, tzinfo=ZoneInfo("Europe/Paris"))


def test_propose_slot_skips_busy_slots_and_holidays(settings):
    settings.TIME_ZONE = "UTC"
    now = datetime.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    busy = [
        (
            datetime.datetime(2026, 3, 10, 10, 30, tzinfo=UTC),
            datetime.datetime(2026, 3, 10, 11, 30, tzinfo=UTC),
        )
    ]
    slot = propose_slot(
        deadline=None,
        duration=datetime.timedelta(hours=1),
        busy=busy,
        now=now,
        holiday_set={datetime.date(2026, 3, 9)},
    )
    assert slot == datetime.datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def test_propose_slot_after_a_passed_deadline_still_proposes_the_next_slot(settings):
    settings.TIME_ZONE = "UTC"
    now = datetime.datetime(2026, 3, 6, 15, 0, tzinfo=UTC)
    deadline = datetime.datetime(2026, 3, 5, 23, 59, 59, tzinfo=UTC)
    slot = propose_slot(
        deadline=deadline, duration=datetime.timedelta(hours=1), now=now, holiday_set=set()
    )
    assert slot == datetime.datetime(2026, 3, 9, 10, 0, tzinfo=UTC)


def test_beat_schedule_names_registered_postmortem_tasks(settings):
    from config.celery import app

    app.loader.import_default_modules()
    names = [
        entry["task"]
        for key, entry in settings.CELERY_BEAT_SCHEDULE.items()
        if key.startswith("postmortems-")
    ]
    assert len(names) == 4
    for name in names:
        assert name in app.tasks, name


def test_duration_filter_formats_spans():
    from postmortems.templatetags.postmortem_tags import duration

    assert duration(None) == "—"
    assert duration(datetime.timedelta(seconds=42)) == "42 s"
    assert duration(datetime.timedelta(minutes=3, seconds=5)) == "3 min 05 s"
    assert duration(datetime.timedelta(minutes=47)) == "47 min"
    assert duration(datetime.timedelta(hours=2, minutes=5)) == "2 h 05 min"
    assert duration(datetime.timedelta(days=1, hours=1)) == "1 d 1 h 00 min"
