"""Comms web pages: the public status page (/status/) and the incident comms panel."""

from django.urls import path

from . import views

app_name = "comms"

urlpatterns = [
    path("status/", views.status_page, name="status"),
    # The same page under the name the site navigation reverses.
    path("status/", views.status_page, name="status-page"),
    path("status/index.json", views.status_json, name="status-json"),
    path("status/feed.atom", views.status_feed, name="status-feed"),
    path("status/subscribe/", views.subscribe, name="subscribe"),
    path(
        "status/subscribe/confirm/<str:token>/",
        views.subscribe_confirm,
        name="subscribe-confirm",
    ),
    path("status/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
    path("comms/incidents/<int:incident_id>/panel/", views.incident_panel, name="panel"),
    path("comms/incidents/<int:incident_id>/compose/", views.compose, name="compose"),
    path(
        "comms/incidents/<int:incident_id>/compose/submit/",
        views.compose_submit,
        name="compose-submit",
    ),
    path("comms/updates/<int:update_id>/publish/", views.draft_publish, name="draft-publish"),
    path("comms/updates/<int:update_id>/discard/", views.draft_discard, name="draft-discard"),
    path("comms/deliveries/<int:delivery_id>/retry/", views.delivery_retry, name="delivery-retry"),
]
