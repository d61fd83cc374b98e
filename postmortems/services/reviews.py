"""Post-incident review meetings: propose a slot, invite, reschedule, cancel, remind."""

from __future__ import annotations

import datetime
from email.utils import parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from config.kernel.actors import user_or_none
from incidents.models import ResponderAssignment
from incidents.names import display_name
from incidents.severity import severity_policy

from .. import events
from ..events import USERS_ADMIN
from ..models import PostmortemStatus, Review, ReviewStatus
from ..scheduling import propose_slot
from .errors import PostmortemError
from .mail import enqueue_review_mail
from .postmortems import _lock as _lock_postmortem


def _add(invitees: dict, *, email: str, name: str, reason: str) -> None:
    email = (email or "").strip()
    if not email:
        return
    key = email.lower()
    if key in invitees:
        if reason not in invitees[key]["reason"]:
            invitees[key]["reason"] += f", {reason}"
        return
    invitees[key] = {"email": email, "name": name, "reason": reason}


def _leave_out(left_out: dict, *, user, reason: str) -> None:
    """Note someone the playbook says to invite who has no e-mail address to invite."""
    key = user.get_username()
    if key in left_out:
        if reason not in left_out[key]["reason"]:
            left_out[key]["reason"] += f", {reason}"
        return
    left_out[key] = {
        "name": display_name(user),
        "username": key,
        "reason": reason,
        "why": "no e-mail address",
        "fix": f"set it in {USERS_ADMIN}",
    }


def _review_people(postmortem) -> tuple[list[dict], list[dict]]:
    """Who the playbook says to invite (response team, database specialists, stakeholders),
    and who of them cannot be invited because they have no e-mail address."""
    invitees: dict[str, dict] = {}
    left_out: dict[str, dict] = {}
    incident = postmortem.incident
    people = [
        # Everyone who held a role during the response, relieved or not: they were the team.
        (assignment.user, "response team")
        for assignment in ResponderAssignment.objects.filter(incident=incident).select_related(
            "user"
        )
    ]
    people += [
        (user, "database specialist")
        for user in get_user_model().objects.filter(
            groups__name=settings.QUELL_DATABASE_SPECIALISTS_GROUP, is_active=True
        )
    ]
    for user, reason in people:
        if (user.email or "").strip():
            _add(invitees, email=user.email, name=display_name(user), reason=reason)
        else:
            _leave_out(left_out, user=user, reason=reason)
    for entry in severity_policy(incident.severity).stakeholders:
        name, email = parseaddr(entry)
        _add(invitees, email=email, name=name, reason="stakeholder")
    return list(invitees.values()), list(left_out.values())


def review_invitees(postmortem) -> list[dict]:
    """Who the playbook says to invite: the response team, database specialists, stakeholders."""
    return _review_people(postmortem)[0]


def review_left_out(postmortem) -> list[dict]:
    """People the playbook says to invite who have no e-mail address (named, not skipped)."""
    return _review_people(postmortem)[1]


def left_out_sentence(person: dict, *, what: str = "invitation") -> str:
    """ "alice has no e-mail address: invitation not sent; set it in Admin → Users"."""
    return f"{person['name']} has no e-mail address: {what} not sent; {person['fix']}"


def _record_left_out(review: Review, *, what: str, actor=None) -> None:
    """Put on the timeline that the review `what` reached nobody for the people left out."""
    if review.left_out:
        events.review_mail_undelivered_event(review, what=what, actor=actor)


def _clean_extra(extra: list[str] | None) -> list[dict]:
    result = []
    for raw in extra or []:
        raw = raw.strip()
        if not raw:
            continue
        name, email = parseaddr(raw)
        try:
            validate_email(email)
        except ValidationError:
            raise PostmortemError(
                f"{raw!r} is not an e-mail address.", field="extra_attendees"
            ) from None
        result.append({"email": email, "name": name, "reason": "invited"})
    return result


def _busy(exclude_review_id: int | None = None) -> list[tuple]:
    qs = Review.objects.filter(status=ReviewStatus.SCHEDULED, starts_at__gte=timezone.now())
    if exclude_review_id:
        qs = qs.exclude(pk=exclude_review_id)
    return [(r.starts_at, r.ends_at) for r in qs]


def review_proposed_slot(postmortem, *, exclude_review_id: int | None = None) -> datetime.datetime:
    """The first free working-hours slot before the deadline (after it when none is left)."""
    return propose_slot(
        deadline=postmortem.review_due_at,
        duration=datetime.timedelta(minutes=settings.QUELL_REVIEW_DURATION_MINUTES),
        busy=_busy(exclude_review_id),
    )


def _validate_time(starts_at, duration_minutes) -> None:
    if starts_at is None:
        raise PostmortemError("Choose a start time.", field="starts_at")
    if timezone.is_naive(starts_at):
        raise PostmortemError("The start time needs a time zone.", field="starts_at")
    if starts_at <= timezone.now():
        raise PostmortemError("The review must start in the future.", field="starts_at")
    if not 5 <= duration_minutes <= 480:
        raise PostmortemError("A review lasts between 5 and 480 minutes.", field="duration_minutes")


@transaction.atomic
def review_schedule(
    *,
    postmortem_id: int,
    actor=None,
    starts_at: datetime.datetime | None = None,
    duration_minutes: int | None = None,
    location: str = "",
    agenda: str = "",
    extra_attendees: list[str] | None = None,
) -> Review:
    """Schedule the review (at the proposed slot unless given) and send the invites."""
    postmortem = _lock_postmortem(postmortem_id)
    if postmortem.status == PostmortemStatus.WAIVED:
        raise PostmortemError("The postmortem was waived; no review is needed.", field="status")
    if Review.objects.filter(postmortem=postmortem, status=ReviewStatus.SCHEDULED).exists():
        raise PostmortemError(
            "A review is already scheduled; reschedule or cancel it.", field="starts_at"
        )
    duration_minutes = duration_minutes or settings.QUELL_REVIEW_DURATION_MINUTES
    starts_at = starts_at or review_proposed_slot(postmortem)
    _validate_time(starts_at, duration_minutes)
    attendees, left_out = _review_people(postmortem)
    known = {a["email"].lower() for a in attendees}
    attendees += [a for a in _clean_extra(extra_attendees) if a["email"].lower() not in known]
    if not attendees:
        missing = ""
        if left_out:
            missing = " Without an address: " + ", ".join(p["name"] for p in left_out) + "."
        raise PostmortemError(
            "Nobody to invite: no responder, database specialist or stakeholder has an e-mail "
            f"address. Add attendees, or set addresses in {USERS_ADMIN}.{missing}",
            field="extra_attendees",
        )
    try:
        with transaction.atomic():
            review = Review.objects.create(
                postmortem=postmortem,
                starts_at=starts_at,
                duration_minutes=duration_minutes,
                location=location or postmortem.incident.bridge_url,
                agenda=agenda,
                attendees=attendees,
                left_out=left_out,
                organizer=user_or_none(actor),
            )
    except IntegrityError:
        raise PostmortemError(
            "A review was scheduled concurrently; reload the page.", field="starts_at"
        ) from None
    events.review_scheduled_event(review, invited=len(attendees), actor=actor)
    _record_left_out(review, what="invitation", actor=actor)
    enqueue_review_mail(review_id=review.pk, sequence=review.sequence, kind="invite")
    return review


def _lock_review(review_id: int) -> Review:
    try:
        return (
            Review.objects.select_for_update(of=("self",))
            .select_related("postmortem", "postmortem__incident", "organizer")
            .get(pk=review_id)
        )
    except Review.DoesNotExist:
        raise PostmortemError(f"Review {review_id} does not exist.", field="review") from None


@transaction.atomic
def review_reschedule(
    *,
    review_id: int,
    starts_at: datetime.datetime,
    actor=None,
    duration_minutes: int | None = None,
    location: str | None = None,
    agenda: str | None = None,
) -> Review:
    """Move the review; the same UID with a higher SEQUENCE updates everyone's calendar."""
    review = _lock_review(review_id)
    if review.status != ReviewStatus.SCHEDULED:
        raise PostmortemError(
            f"This review is {review.get_status_display().lower()}; schedule a new one.",
            field="status",
        )
    duration_minutes = duration_minutes or review.duration_minutes
    _validate_time(starts_at, duration_minutes)
    previous = review.starts_at
    review.starts_at = starts_at
    review.duration_minutes = duration_minutes
    if location is not None:
        review.location = location
    if agenda is not None:
        review.agenda = agenda
    # Everyone is invited again, including people who joined the response team since.
    known = {a["email"].lower() for a in review.attendees}
    invitees, review.left_out = _review_people(review.postmortem)
    review.attendees += [a for a in invitees if a["email"].lower() not in known]
    review.sequence += 1
    review.reminder_sent_at = None
    review.save()
    events.review_rescheduled_event(review, previous=previous, actor=actor)
    _record_left_out(review, what="update", actor=actor)
    enqueue_review_mail(review_id=review.pk, sequence=review.sequence, kind="update")
    return review


def _cancel_locked(review: Review, *, actor, reason: str) -> Review:
    review.status = ReviewStatus.CANCELLED
    review.cancelled_reason = reason
    review.sequence += 1
    review.save(update_fields=["status", "cancelled_reason", "sequence", "updated_at"])
    events.review_cancelled_event(review, reason=reason, actor=actor)
    enqueue_review_mail(review_id=review.pk, sequence=review.sequence, kind="cancel")
    return review


@transaction.atomic
def review_cancel(*, review_id: int, actor=None, reason: str = "") -> Review:
    """Cancel the review and send METHOD:CANCEL to every attendee."""
    review = _lock_review(review_id)
    if review.status == ReviewStatus.CANCELLED:
        return review
    if review.status != ReviewStatus.SCHEDULED:
        raise PostmortemError("Only a scheduled review can be cancelled.", field="status")
    return _cancel_locked(review, actor=actor, reason=(reason or "").strip())


@transaction.atomic
def review_mark_held(*, review_id: int, actor=None) -> Review:
    """Record that the review took place."""
    review = _lock_review(review_id)
    if review.status == ReviewStatus.HELD:
        return review
    if review.status != ReviewStatus.SCHEDULED:
        raise PostmortemError("Only a scheduled review can be marked as held.", field="status")
    if review.starts_at > timezone.now():
        raise PostmortemError("The review has not started yet.", field="status")
    review.status = ReviewStatus.HELD
    review.save(update_fields=["status", "updated_at"])
    events.review_held_event(review, actor=actor)
    return review


@transaction.atomic
def review_send_reminder(*, review_id: int, now: datetime.datetime | None = None) -> bool:
    """Send the pre-review reminder once, within QUELL_REVIEW_REMINDER_HOURS of the start."""
    now = now or timezone.now()
    review = _lock_review(review_id)
    window = datetime.timedelta(hours=settings.QUELL_REVIEW_REMINDER_HOURS)
    if (
        review.status != ReviewStatus.SCHEDULED
        or review.reminder_sent_at is not None
        or not now < review.starts_at <= now + window
    ):
        return False
    review.reminder_sent_at = now
    review.save(update_fields=["reminder_sent_at", "updated_at"])
    _record_left_out(review, what="reminder")
    enqueue_review_mail(review_id=review.pk, sequence=review.sequence, kind="reminder")
    return True
