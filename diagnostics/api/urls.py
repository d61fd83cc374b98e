"""/api/v1/diagnostics/ routes: targets, runs, results, comparisons, incident links."""

from django.urls import path

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
]
