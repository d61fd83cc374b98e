"""/api/v1/diagnostics/ routes: targets, runs, results, comparisons, incident links."""

from django.urls import path

from ..alerts import api as alert_views
from . import views

urlpatterns = [
    path(
        "diagnostics/targets/",
        views.TargetListCreateApi.as_view(),
        name="diagnostics-target-list",
    ),
    path(
        "diagnostics/targets/<int:pk>/",
        views.TargetDetailApi.as_view(),
        name="diagnostics-target-detail",
    ),
    path(
        "diagnostics/targets/<int:pk>/test-connection/",
        views.TargetTestConnectionApi.as_view(),
        name="diagnostics-target-test-connection",
    ),
    path(
        "diagnostics/targets/<int:pk>/runs/",
        views.TargetRunsApi.as_view(),
        name="diagnostics-target-runs",
    ),
    path(
        "diagnostics/targets/<int:pk>/checks/<str:key>/results/",
        views.CheckHistoryApi.as_view(),
        name="diagnostics-check-history",
    ),
    path("diagnostics/runs/", views.RunListCreateApi.as_view(), name="diagnostics-run-list"),
    path("diagnostics/runs/<int:pk>/", views.RunDetailApi.as_view(), name="diagnostics-run-detail"),
    path(
        "diagnostics/runs/<int:pk>/compare/",
        views.RunCompareApi.as_view(),
        name="diagnostics-run-compare",
    ),
    path("diagnostics/checks/", views.CheckListApi.as_view(), name="diagnostics-check-list"),
    path(
        "diagnostics/incidents/<int:incident_id>/targets/",
        views.IncidentTargetsApi.as_view(),
        name="diagnostics-incident-targets",
    ),
    path(
        "diagnostics/incidents/<int:incident_id>/targets/<int:target_id>/",
        views.IncidentTargetDetailApi.as_view(),
        name="diagnostics-incident-target-detail",
    ),
    path(
        "diagnostics/incidents/<int:incident_id>/summary/",
        views.IncidentSummaryApi.as_view(),
        name="diagnostics-incident-summary",
    ),
    path(
        "diagnostics/incidents/<int:incident_id>/runs/",
        views.IncidentRunsApi.as_view(),
        name="diagnostics-incident-runs",
    ),
    path(
        "diagnostics/declare/",
        views.DeclareWithTargetsApi.as_view(),
        name="diagnostics-declare",
    ),
    # Detection: alerts from monitoring tools (docs/detection.md).
    path(
        "alerts/alertmanager/",
        alert_views.AlertmanagerWebhookApi.as_view(),
        name="alerts-alertmanager",
    ),
    path("alerts/webhook/", alert_views.GenericWebhookApi.as_view(), name="alerts-webhook"),
]

# Data integrity checks, runs and comparisons (diagnostics/integrity/).
from diagnostics.integrity.api_urls import urlpatterns as _integrity  # noqa: E402

urlpatterns += _integrity

# Guarded remediation and runbooks.
from ..remediation import api as remediation_api  # noqa: E402
from ..runbooks import api as runbooks_api  # noqa: E402

urlpatterns += [
    path(
        "diagnostics/remediations/",
        remediation_api.RemediationListApi.as_view(),
        name="diagnostics-remediation-list",
    ),
    path(
        "diagnostics/remediations/preview/",
        remediation_api.RemediationPreviewApi.as_view(),
        name="diagnostics-remediation-preview",
    ),
    path(
        "diagnostics/remediations/<int:pk>/",
        remediation_api.RemediationDetailApi.as_view(),
        name="diagnostics-remediation-detail",
    ),
    path(
        "diagnostics/remediations/<int:pk>/execute/",
        remediation_api.RemediationExecuteApi.as_view(),
        name="diagnostics-remediation-execute",
    ),
    path(
        "diagnostics/runbooks/",
        runbooks_api.RunbookListApi.as_view(),
        name="diagnostics-runbook-list",
    ),
    path(
        "diagnostics/incidents/<int:incident_id>/runbooks/",
        runbooks_api.IncidentRunbooksApi.as_view(),
        name="diagnostics-incident-runbooks",
    ),
    path(
        "diagnostics/incidents/<int:incident_id>/runbooks/<int:run_id>/steps/<int:step_id>/",
        runbooks_api.RunbookStepApi.as_view(),
        name="diagnostics-incident-runbook-step",
    ),
]
