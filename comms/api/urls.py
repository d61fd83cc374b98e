"""Comms REST endpoints, mounted under /api/v1/."""

from django.urls import path

from . import views

app_name = "comms-api"

urlpatterns = [
    path("comms/templates/", views.TemplateListCreate.as_view(), name="templates"),
    path("comms/templates/variables/", views.TemplateVariables.as_view(), name="variables"),
    path("comms/templates/<int:pk>/", views.TemplateDetail.as_view(), name="template"),
    path(
        "comms/incidents/<int:incident_id>/updates/",
        views.IncidentUpdates.as_view(),
        name="incident-updates",
    ),
    path(
        "comms/incidents/<int:incident_id>/preview/",
        views.IncidentPreview.as_view(),
        name="incident-preview",
    ),
    path(
        "comms/incidents/<int:incident_id>/status/",
        views.IncidentCommsStatus.as_view(),
        name="incident-status",
    ),
    path("comms/updates/<int:pk>/", views.UpdateDetail.as_view(), name="update"),
    path("comms/updates/<int:pk>/publish/", views.UpdatePublish.as_view(), name="update-publish"),
    path("comms/channels/", views.ChannelListCreate.as_view(), name="channels"),
    path("comms/channels/<int:pk>/", views.ChannelDetail.as_view(), name="channel"),
    path("comms/channels/<int:pk>/test/", views.ChannelTest.as_view(), name="channel-test"),
    path("comms/deliveries/", views.DeliveryList.as_view(), name="deliveries"),
    path("comms/deliveries/<int:pk>/", views.DeliveryDetail.as_view(), name="delivery"),
    path("comms/deliveries/<int:pk>/retry/", views.DeliveryRetry.as_view(), name="delivery-retry"),
    path("comms/components/", views.ComponentListCreate.as_view(), name="components"),
    path("comms/components/<int:pk>/", views.ComponentDetail.as_view(), name="component"),
    path(
        "comms/components/<int:pk>/state/",
        views.ComponentSetState.as_view(),
        name="component-state",
    ),
    path("comms/subscribers/", views.SubscriberList.as_view(), name="subscribers"),
    path("comms/subscribers/<int:pk>/", views.SubscriberDetail.as_view(), name="subscriber"),
]
