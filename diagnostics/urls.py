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
        "incidents/<int:incident_id>/diagnostics/what-matters/",
        views.incident_what_matters,
        name="incident-what-matters",
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
