"""Web routes of guarded remediation and runbooks: the incident page's panels (namespace
"remediation")."""

from django.urls import path

from . import views
from .runbooks import views as runbooks_views

app_name = "remediation"

urlpatterns = [
    path(
        "incidents/<int:incident_id>/remediation/",
        views.remediation_panel,
        name="incident-remediation",
    ),
    path(
        "incidents/<int:incident_id>/remediation/history/",
        views.remediation_history,
        name="incident-remediation-history",
    ),
    path(
        "incidents/<int:incident_id>/remediation/preview/",
        views.remediation_preview,
        name="incident-remediation-preview",
    ),
    path(
        "incidents/<int:incident_id>/remediation/<int:action_id>/execute/",
        views.remediation_execute,
        name="incident-remediation-execute",
    ),
    path(
        "incidents/<int:incident_id>/runbooks/",
        runbooks_views.runbooks_panel,
        name="incident-runbooks",
    ),
    path(
        "incidents/<int:incident_id>/runbooks/start/",
        runbooks_views.runbook_start,
        name="incident-runbook-start",
    ),
    path(
        "incidents/<int:incident_id>/runbooks/<int:run_id>/steps/<int:step_id>/",
        runbooks_views.runbook_step,
        name="incident-runbook-step",
    ),
]
