"""Web routes for data integrity (namespace "integrity")."""

from django.urls import path

from . import views

app_name = "integrity"

urlpatterns = [
    path(
        "incidents/<int:incident_id>/integrity/",
        views.incident_panel,
        name="integrity-panel",
    ),
    path(
        "incidents/<int:incident_id>/integrity/run/",
        views.incident_run,
        name="integrity-incident-run",
    ),
    path("diagnostics/integrity/runs/<int:run_id>/", views.run_detail, name="integrity-run"),
    path(
        "diagnostics/targets/<int:target_id>/integrity/",
        views.target_checks,
        name="integrity-target",
    ),
    path(
        "diagnostics/targets/<int:target_id>/integrity/suggestions/",
        views.target_apply_suggestions,
        name="integrity-apply-suggestions",
    ),
    path(
        "diagnostics/targets/<int:target_id>/integrity/run/",
        views.target_run,
        name="integrity-target-run",
    ),
]
