"""/api/v1/alerts/ routes: alerts from monitoring tools, and an incident's alerts
(docs/detection.md)."""

from django.urls import path

from . import views

urlpatterns = [
    path(
        "alerts/alertmanager/",
        views.AlertmanagerWebhookApi.as_view(),
        name="alerts-alertmanager",
    ),
    path("alerts/webhook/", views.GenericWebhookApi.as_view(), name="alerts-webhook"),
    path(
        "incidents/<int:incident_id>/alerts/",
        views.IncidentAlertsApi.as_view(),
        name="incident-alerts",
    ),
]
