"""The postmortem page's review meeting: schedule, move, cancel, record as held, download
the calendar event. Each answers by going back to the postmortem page (or with its form and
errors, status 400)."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from config.kernel.permissions import RESPONDER, VIEWER, role_required

from . import selectors, services
from .forms import PostmortemForm, RescheduleForm, ReviewForm
from .ics import review_calendar
from .models import Review, ReviewStatus
from .views import _detail_url, _errors_text, _initial, _page, _postmortem_or_404


@role_required(RESPONDER)
@require_POST
def review_schedule(request, postmortem_id: int):
    """Schedule the review and send the invites."""
    postmortem = _postmortem_or_404(postmortem_id)
    form = ReviewForm(request.POST)
    if form.is_valid():
        try:
            review = services.review_schedule(
                postmortem_id=postmortem.pk,
                actor=request.user,
                starts_at=form.cleaned_data["starts_at"],
                duration_minutes=form.cleaned_data["duration_minutes"],
                location=form.cleaned_data["location"],
                agenda=form.cleaned_data["agenda"],
                extra_attendees=form.extra_list(),
            )
        except services.PostmortemError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        else:
            messages.success(
                request,
                f"Review scheduled for {timezone.localtime(review.starts_at):%a %d %b %H:%M}; "
                f"invites sent to {len(review.attendees)} people.",
            )
            return redirect(_detail_url(postmortem, "review"))
    form_page = PostmortemForm(initial=_initial(postmortem))
    return _page(request, postmortem, form=form_page, status=400, review_form=form)


def _review_or_404(review_id: int) -> Review:
    return get_object_or_404(selectors.review_list(), pk=review_id)


@role_required(RESPONDER)
@require_POST
def review_reschedule(request, review_id: int):
    """Move the review; attendees get an update of the same calendar event."""
    review = _review_or_404(review_id)
    form = RescheduleForm(request.POST)
    if form.is_valid():
        try:
            services.review_reschedule(
                review_id=review.pk,
                actor=request.user,
                starts_at=form.cleaned_data["starts_at"],
                duration_minutes=form.cleaned_data.get("duration_minutes"),
            )
        except services.PostmortemError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Review moved; attendees were sent an update.")
    else:
        messages.error(request, "Not moved: " + _errors_text(form))
    return redirect(_detail_url(review.postmortem, "review"))


@role_required(RESPONDER)
@require_POST
def review_cancel(request, review_id: int):
    """Cancel the review; attendees get a cancellation."""
    review = _review_or_404(review_id)
    try:
        services.review_cancel(
            review_id=review.pk, actor=request.user, reason=request.POST.get("reason", "")
        )
    except services.PostmortemError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Review cancelled; attendees were notified.")
    return redirect(_detail_url(review.postmortem, "review"))


@role_required(RESPONDER)
@require_POST
def review_held(request, review_id: int):
    """Record that the review took place."""
    review = _review_or_404(review_id)
    try:
        services.review_mark_held(review_id=review.pk, actor=request.user)
    except services.PostmortemError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Review recorded as held.")
    return redirect(_detail_url(review.postmortem, "review"))


@role_required(VIEWER)
@require_GET
def review_ics(request, review_id: int):
    """The review's calendar event as an .ics download (a cancel once cancelled)."""
    review = _review_or_404(review_id)
    method = "CANCEL" if review.status == ReviewStatus.CANCELLED else "REQUEST"
    response = HttpResponse(
        review_calendar(review, method=method), content_type="text/calendar; charset=utf-8"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="review-incident-{review.postmortem.incident_id}.ics"'
    )
    return response
