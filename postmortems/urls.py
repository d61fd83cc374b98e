"""Postmortem web pages."""

from django.urls import path

from . import review_views, views

app_name = "postmortems"

urlpatterns = [
    path("postmortems/", views.postmortem_list, name="list"),
    path("postmortems/action-items/", views.action_item_list, name="action-items"),
    path(
        "postmortems/action-items/<int:action_item_id>/edit/",
        views.action_item_edit,
        name="action-item-edit",
    ),
    path(
        "postmortems/action-items/<int:action_item_id>/complete/",
        views.action_item_complete,
        name="action-item-complete",
    ),
    path(
        "postmortems/incident/<int:incident_id>/",
        views.postmortem_for_incident,
        name="for-incident",
    ),
    path("postmortems/<int:postmortem_id>/", views.postmortem_detail, name="detail"),
    path("postmortems/<int:postmortem_id>/autosave/", views.postmortem_autosave, name="autosave"),
    path("postmortems/<int:postmortem_id>/preview/", views.postmortem_preview, name="preview"),
    path("postmortems/<int:postmortem_id>/status/", views.postmortem_status, name="status"),
    path(
        "postmortems/<int:postmortem_id>/export.md",
        views.postmortem_export_markdown,
        name="export-markdown",
    ),
    path("postmortems/<int:postmortem_id>/print/", views.postmortem_print, name="print"),
    path(
        "postmortems/<int:postmortem_id>/action-items/",
        views.action_item_create,
        name="action-item-create",
    ),
    path(
        "postmortems/<int:postmortem_id>/action-items/settle/",
        views.action_items_settle,
        name="action-items-settle",
    ),
    path(
        "postmortems/<int:postmortem_id>/review/",
        review_views.review_schedule,
        name="review-schedule",
    ),
    path(
        "postmortems/reviews/<int:review_id>/reschedule/",
        review_views.review_reschedule,
        name="review-reschedule",
    ),
    path(
        "postmortems/reviews/<int:review_id>/cancel/",
        review_views.review_cancel,
        name="review-cancel",
    ),
    path("postmortems/reviews/<int:review_id>/held/", review_views.review_held, name="review-held"),
    path(
        "postmortems/reviews/<int:review_id>/invite.ics", review_views.review_ics, name="review-ics"
    ),
]
