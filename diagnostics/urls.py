"""Web pages of diagnostics: the incident panel's partials and run pages."""

from django.urls import path

from . import views

app_name = "diagnostics"

urlpatterns = [
    path(
        "incidents/<int:incident_id>/diagnostics/",
        views.incident_panel,
        name="incident-panel",
    ),
    path(
        "incidents/<int:incident_id>/diagnostics/run/",
        views.incident_run,
        name="incident-run",
    ),
    path(
        "incidents/<int:incident_id>/diagnostics/targets/",
        views.incident_target_add,
        name="incident-target-add",
    ),
    path(
        "incidents/<int:incident_id>/diagnostics/targets/<int:target_id>/remove/",
        views.incident_target_remove,
        name="incident-target-remove",
    ),
    path("diagnostics/", views.target_list, name="target-list"),
    path("diagnostics/targets/<int:target_id>/run/", views.target_run, name="target-run"),
    path(
        "diagnostics/targets/<int:target_id>/test-connection/",
        views.target_test_connection,
        name="target-test-connection",
    ),
    path("diagnostics/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("diagnostics/targets/<int:target_id>/runs/", views.target_runs, name="target-runs"),
]

# Guarded remediation and runbooks (the incident page's panels).
from .remediation import views as remediation_views  # noqa: E402
from .runbooks import views as runbooks_views  # noqa: E402

urlpatterns += [
    path(
        "incidents/<int:incident_id>/remediation/",
        remediation_views.remediation_panel,
        name="incident-remediation",
    ),
    path(
        "incidents/<int:incident_id>/remediation/history/",
        remediation_views.remediation_history,
        name="incident-remediation-history",
    ),
    path(
        "incidents/<int:incident_id>/remediation/preview/",
        remediation_views.remediation_preview,
        name="incident-remediation-preview",
    ),
    path(
        "incidents/<int:incident_id>/remediation/<int:action_id>/execute/",
        remediation_views.remediation_execute,
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

# Data integrity: the incident panel, run and target pages (diagnostics/integrity/).
from diagnostics.integrity.urls import urlpatterns as _integrity  # noqa: E402

urlpatterns += _integrity
