"""The text of postmortem mail: review invites, updates, cancellations, reminders, and overdue
action items."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone

from incidents.names import display_name

from .ics import review_calendar
from .services.mail import build_message


def _url(path: str) -> str:
    return settings.QUELL_BASE_URL.rstrip("/") + path


def _when(review) -> str:
    start = timezone.localtime(review.starts_at)
    end = timezone.localtime(review.ends_at)
    return f"{start:%A %d %B %Y, %H:%M} to {end:%H:%M} ({start:%Z})"


def review_message(review, *, kind: str):
    """The mail for one version of a review: kind is invite, update, cancel or reminder."""
    to = [a["email"] for a in review.attendees if a.get("email")]
    if not to:
        return None
    incident = review.postmortem.incident
    title = f"#{incident.pk} {incident.title}"
    subjects = {
        "invite": f"Invitation: post-incident review of {title}",
        "update": f"Updated: post-incident review of {title}",
        "cancel": f"Cancelled: post-incident review of {title}",
        "reminder": f"Reminder: post-incident review of {title}",
    }
    if kind not in subjects:
        raise ValueError(f"unknown review mail kind {kind!r}")
    postmortem_url = _url(f"/postmortems/{review.postmortem_id}/")
    lines = []
    if kind == "cancel":
        lines.append(f"The post-incident review planned for {_when(review)} is cancelled.")
        if review.cancelled_reason:
            lines.append(f"Reason: {review.cancelled_reason}")
    else:
        intro = {
            "invite": "You are invited to the post-incident review of",
            "update": "The post-incident review has moved. It covers",
            "reminder": "Reminder: the post-incident review is coming up. It covers",
        }[kind]
        lines += [
            f"{intro} incident {title} ({incident.severity}).",
            "",
            f"When: {_when(review)}",
        ]
        if review.location:
            lines.append(f"Where: {review.location}")
        if review.postmortem.review_due_at:
            due = timezone.localtime(review.postmortem.review_due_at)
            lines.append(f"Review due by: {due:%Y-%m-%d %H:%M %Z}")
        lines += ["", f"Read the postmortem draft before the meeting: {postmortem_url}"]
        if review.agenda:
            lines += ["", "Agenda:", review.agenda]
    lines += ["", "Invited: " + ", ".join(a.get("name") or a["email"] for a in review.attendees)]
    method = "CANCEL" if kind == "cancel" else "REQUEST"
    return build_message(
        subject=subjects[kind],
        body="\n".join(lines) + "\n",
        to=to,
        ics=review_calendar(review, method=method),
        ics_method=method,
    )


def action_item_reminder_message(owner, items):
    """One mail per owner listing their overdue action items."""
    today = timezone.localdate()
    lines = [
        f"Hello {display_name(owner)},",
        "",
        f"{len(items)} postmortem action item{'s are' if len(items) != 1 else ' is'} past due:",
        "",
    ]
    for item in items:
        late = (today - item.due_date).days
        lines.append(
            f"- {item.title} ({item.get_category_display()}), due {item.due_date:%Y-%m-%d} "
            f"({late} day{'s' if late != 1 else ''} late), incident "
            f"#{item.postmortem.incident_id}: {_url(f'/postmortems/{item.postmortem_id}/')}"
        )
        if item.tracker_url:
            lines.append(f"  Tracker: {item.tracker_url}")
    lines += ["", f"All overdue items: {_url('/postmortems/action-items/?overdue=1')}"]
    return build_message(
        subject=f"{len(items)} overdue postmortem action item{'s' if len(items) != 1 else ''}",
        body="\n".join(lines) + "\n",
        to=[owner.email],
    )
