"""/api/v1/ routes for postmortems, action items and reviews."""

from django.urls import path

from . import views

urlpatterns = [
    path("postmortems/", views.PostmortemListCreateApi.as_view(), name="postmortem-list"),
    path(
        "postmortems/<int:postmortem_id>/",
        views.PostmortemDetailApi.as_view(),
        name="postmortem-detail",
    ),
    path(
        "postmortems/<int:postmortem_id>/markdown/",
        views.PostmortemMarkdownApi.as_view(),
        name="postmortem-markdown",
    ),
    path(
        "postmortems/<int:postmortem_id>/submit/",
        views.PostmortemSubmitApi.as_view(),
        name="postmortem-submit",
    ),
    path(
        "postmortems/<int:postmortem_id>/return-to-draft/",
        views.PostmortemReturnToDraftApi.as_view(),
        name="postmortem-return-to-draft",
    ),
    path(
        "postmortems/<int:postmortem_id>/publish/",
        views.PostmortemPublishApi.as_view(),
        name="postmortem-publish",
    ),
    path(
        "postmortems/<int:postmortem_id>/waive/",
        views.PostmortemWaiveApi.as_view(),
        name="postmortem-waive",
    ),
    path(
        "postmortems/<int:postmortem_id>/review-proposal/",
        views.ReviewProposalApi.as_view(),
        name="postmortem-review-proposal",
    ),
    path(
        "postmortems/<int:postmortem_id>/review/",
        views.ReviewScheduleApi.as_view(),
        name="postmortem-review-schedule",
    ),
    path("reviews/", views.ReviewListApi.as_view(), name="review-list"),
    path("reviews/<int:review_id>/", views.ReviewDetailApi.as_view(), name="review-detail"),
    path(
        "reviews/<int:review_id>/reschedule/",
        views.ReviewRescheduleApi.as_view(),
        name="review-reschedule",
    ),
    path("reviews/<int:review_id>/cancel/", views.ReviewCancelApi.as_view(), name="review-cancel"),
    path("reviews/<int:review_id>/ics/", views.ReviewIcsApi.as_view(), name="review-ics"),
    path("action-items/", views.ActionItemListCreateApi.as_view(), name="action-item-list"),
    path(
        "action-items/<int:action_item_id>/",
        views.ActionItemDetailApi.as_view(),
        name="action-item-detail",
    ),
    path(
        "action-items/<int:action_item_id>/complete/",
        views.ActionItemCompleteApi.as_view(),
        name="action-item-complete",
    ),
]
