"""/api/v1/ routes for incidents, roles, timeline and manual reports."""

from django.urls import path

from . import views

urlpatterns = [
    path("incidents/", views.IncidentListCreateApi.as_view(), name="incident-list"),
    path("incidents/<int:incident_id>/", views.IncidentDetailApi.as_view(), name="incident-detail"),
    path(
        "incidents/<int:incident_id>/transition/",
        views.IncidentTransitionApi.as_view(),
        name="incident-transition",
    ),
    path(
        "incidents/<int:incident_id>/severity/",
        views.IncidentSeverityApi.as_view(),
        name="incident-severity",
    ),
    path(
        "incidents/<int:incident_id>/acknowledge/",
        views.IncidentAcknowledgeApi.as_view(),
        name="incident-acknowledge",
    ),
    path(
        "incidents/<int:incident_id>/roles/",
        views.IncidentRolesApi.as_view(),
        name="incident-roles",
    ),
    path(
        "incidents/<int:incident_id>/roles/<int:assignment_id>/relieve/",
        views.IncidentRoleRelieveApi.as_view(),
        name="incident-role-relieve",
    ),
    path(
        "incidents/<int:incident_id>/timeline/",
        views.IncidentTimelineApi.as_view(),
        name="incident-timeline",
    ),
    path("reports/", views.ReportSubmitApi.as_view(), name="report-submit"),
]
