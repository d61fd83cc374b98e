"""Web pages of detection: the incident page's Signals panel."""

from django.urls import path

from . import views

app_name = "detection"

urlpatterns = [
    path(
        "incidents/<int:incident_id>/signals/",
        views.incident_signals,
        name="incident-signals",
    ),
]
