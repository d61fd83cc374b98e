"""Review policy arithmetic: deadlines by severity in business or calendar days, and slot proposals.

Everything is computed in the organisation's time zone (settings.TIME_ZONE, from QUELL_TIME_ZONE):
"three days after resolution" means three of the organisation's days, whatever UTC says, and a
deadline is the end of that local day, which stays right across daylight-saving changes because
the wall-clock time is built first and only then given its UTC offset.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from incidents.severity import ReviewDeadline, severity_policy

END_OF_DAY = datetime.time(23, 59, 59)


# The review deadline of a severity (kept under its old name for this module's callers).
ReviewRule = ReviewDeadline


def org_tz() -> ZoneInfo:
    """The organisation's time zone."""
    return ZoneInfo(settings.TIME_ZONE)


def holidays() -> frozenset[datetime.date]:
    """Configured public holidays (settings.QUELL_HOLIDAYS, ISO dates)."""
    days = set()
    for raw in settings.QUELL_HOLIDAYS:
        raw = str(raw).strip()
        if not raw:
            continue
        try:
            days.add(datetime.date.fromisoformat(raw))
        except ValueError:
            raise ImproperlyConfigured(
                f"QUELL_HOLIDAYS: {raw!r} is not an ISO date (YYYY-MM-DD)."
            ) from None
    return frozenset(days)


def is_business_day(day: datetime.date, holiday_set: Iterable[datetime.date] = ()) -> bool:
    """Monday to Friday and not a holiday."""
    return day.weekday() < 5 and day not in holiday_set


def add_business_days(
    start: datetime.date, count: int, holiday_set: Iterable[datetime.date] = ()
) -> datetime.date:
    """The `count`-th business day after `start` (start itself never counts)."""
    if count < 0:
        raise ValueError("count must not be negative")
    holiday_set = frozenset(holiday_set)
    day = start
    remaining = count
    while remaining:
        day += datetime.timedelta(days=1)
        if is_business_day(day, holiday_set):
            remaining -= 1
    return day


def next_business_day(
    day: datetime.date, holiday_set: Iterable[datetime.date] = ()
) -> datetime.date:
    """The first business day after `day`."""
    return add_business_days(day, 1, holiday_set)


def review_rule(severity: str) -> ReviewRule | None:
    """The review deadline of a severity (None: no review required)."""
    return severity_policy(severity).review


def end_of_local_day(day: datetime.date, tz: ZoneInfo | None = None) -> datetime.datetime:
    """23:59:59 on `day` in the organisation's time zone, as an aware datetime."""
    return datetime.datetime.combine(day, END_OF_DAY, tzinfo=tz or org_tz())


def review_deadline(
    *, resolved_at: datetime.datetime, severity: str, holiday_set=None
) -> datetime.datetime | None:
    """When the review is due: end of the n-th (business or calendar) local day after resolution."""
    rule = review_rule(severity)
    if rule is None:
        return None
    tz = org_tz()
    holiday_set = holidays() if holiday_set is None else holiday_set
    resolved_day = resolved_at.astimezone(tz).date()
    if rule.business:
        due_day = add_business_days(resolved_day, rule.days, holiday_set)
    else:
        due_day = resolved_day + datetime.timedelta(days=rule.days)
    return end_of_local_day(due_day, tz)


def _parse_hhmm(value: str, name: str) -> datetime.time:
    try:
        return datetime.time.fromisoformat(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be HH:MM, not {value!r}.") from None


def working_hours() -> tuple[datetime.time, datetime.time]:
    """The local window in which reviews are proposed."""
    start = _parse_hhmm(settings.QUELL_REVIEW_DAY_START, "QUELL_REVIEW_DAY_START")
    end = _parse_hhmm(settings.QUELL_REVIEW_DAY_END, "QUELL_REVIEW_DAY_END")
    if end <= start:
        raise ImproperlyConfigured("QUELL_REVIEW_DAY_END must be after QUELL_REVIEW_DAY_START.")
    return start, end


def _overlaps(start, end, busy) -> bool:
    return any(start < b_end and b_start < end for b_start, b_end in busy)


def propose_slot(
    *,
    deadline: datetime.datetime | None,
    duration: datetime.timedelta,
    busy: Iterable[tuple[datetime.datetime, datetime.datetime]] = (),
    now: datetime.datetime | None = None,
    holiday_set=None,
) -> datetime.datetime:
    """The first free on-the-hour slot in working hours, from the next business day on.

    Prefers a slot that ends before the deadline; when none is left (the deadline is too close or
    already passed), returns the first free slot after it, and the caller flags it as late.
    Slots overlapping `busy` (other scheduled reviews) are skipped so that the same specialists
    are not double-booked.
    """
    tz = org_tz()
    now = now or timezone.now()
    holiday_set = holidays() if holiday_set is None else holiday_set
    busy = list(busy)
    day_start, day_end = working_hours()
    step = datetime.timedelta(hours=1)
    day = next_business_day(now.astimezone(tz).date(), holiday_set)
    # Bounded search: a few months of working days is more than any calendar needs.
    for _ in range(90):
        slot = datetime.datetime.combine(day, day_start, tzinfo=tz)
        last_start = datetime.datetime.combine(day, day_end, tzinfo=tz) - duration
        while slot <= last_start:
            if not _overlaps(slot, slot + duration, busy):
                return slot
            slot += step
        day = next_business_day(day, holiday_set)
    return datetime.datetime.combine(day, day_start, tzinfo=tz)
