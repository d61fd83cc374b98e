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

# Triage (incidents.triage): the decision tree and an incident's walk through it.
from incidents.triage import api as triage_api  # noqa: E402

urlpatterns += [
    path("triage/tree/", triage_api.TriageTreeCurrentApi.as_view(), name="triage-tree"),
    path(
        "triage/trees/<int:version>/",
        triage_api.TriageTreeVersionApi.as_view(),
        name="triage-tree-version",
    ),
    path(
        "incidents/<int:incident_id>/triage/",
        triage_api.IncidentTriageApi.as_view(),
        name="incident-triage",
    ),
    path(
        "incidents/<int:incident_id>/triage/answer/",
        triage_api.IncidentTriageAnswerApi.as_view(),
        name="incident-triage-answer",
    ),
    path(
        "incidents/<int:incident_id>/triage/back/",
        triage_api.IncidentTriageBackApi.as_view(),
        name="incident-triage-back",
    ),
    path(
        "incidents/<int:incident_id>/triage/apply/",
        triage_api.IncidentTriageApplyApi.as_view(),
        name="incident-triage-apply",
    ),
    path(
        "incidents/<int:incident_id>/triage/suggestions/",
        triage_api.IncidentTriageSuggestionsApi.as_view(),
        name="incident-triage-suggestions",
    ),
    path(
        "incidents/<int:incident_id>/triage/walks/",
        triage_api.IncidentTriageWalksApi.as_view(),
        name="incident-triage-walks",
    ),
]
