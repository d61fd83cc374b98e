"""/api/v1/diagnostics/ routes of guarded remediation and runbooks (mounted by config.urls)."""

from django.urls import path

from . import runbooks as runbooks_api
from . import views as remediation_api

urlpatterns = [
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
