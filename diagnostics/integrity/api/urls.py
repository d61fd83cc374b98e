"""/api/v1/diagnostics/ routes for data integrity (mounted by config.urls)."""

from django.urls import path

from . import views as api

urlpatterns = [
    path(
        "diagnostics/targets/<int:pk>/integrity/checks/",
        api.TargetChecksApi.as_view(),
        name="diagnostics-integrity-target-checks",
    ),
    path(
        "diagnostics/targets/<int:pk>/integrity/checks/preview/",
        api.CheckPreviewApi.as_view(),
        name="diagnostics-integrity-check-preview",
    ),
    path(
        "diagnostics/targets/<int:pk>/integrity/suggestions/",
        api.SuggestionsApi.as_view(),
        name="diagnostics-integrity-suggestions",
    ),
    path(
        "diagnostics/targets/<int:pk>/integrity/runs/",
        api.TargetRunsApi.as_view(),
        name="diagnostics-integrity-target-runs",
    ),
    path(
        "diagnostics/integrity/checks/<int:pk>/",
        api.CheckDetailApi.as_view(),
        name="diagnostics-integrity-check-detail",
    ),
    path(
        "diagnostics/integrity/checks/<int:pk>/results/",
        api.CheckResultsApi.as_view(),
        name="diagnostics-integrity-check-results",
    ),
    path(
        "diagnostics/integrity/runs/<int:pk>/",
        api.RunDetailApi.as_view(),
        name="diagnostics-integrity-run-detail",
    ),
    path(
        "diagnostics/integrity/runs/<int:pk>/compare/",
        api.RunCompareApi.as_view(),
        name="diagnostics-integrity-run-compare",
    ),
]
