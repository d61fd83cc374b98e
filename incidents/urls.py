"""Responder web pages (the REST API is in incidents/api/urls.py)."""

from django.urls import path

from .views import actions, browse, insights, page

app_name = "incidents"

urlpatterns = [
    path("", browse.incident_list, name="list"),
    path("incidents/", browse.incidents_index, name="index"),
    path("incidents/declare/", browse.incident_declare, name="declare"),
    path("incidents/<int:incident_id>/", page.incident_detail, name="detail"),
    path("incidents/<int:incident_id>/timeline/", page.incident_timeline, name="timeline"),
    path("incidents/<int:incident_id>/edit/", actions.incident_edit, name="edit"),
    path("incidents/<int:incident_id>/status/", actions.incident_transition, name="transition"),
    path("incidents/<int:incident_id>/severity/", actions.incident_severity, name="severity"),
    path(
        "incidents/<int:incident_id>/acknowledge/",
        actions.incident_acknowledge,
        name="acknowledge",
    ),
    path("incidents/<int:incident_id>/roles/", actions.role_assign, name="role-assign"),
    path(
        "incidents/<int:incident_id>/roles/<int:assignment_id>/relieve/",
        actions.role_relieve,
        name="role-relieve",
    ),
    path("incidents/<int:incident_id>/notes/", actions.incident_note, name="note"),
    path("insights/", insights.metrics_dashboard, name="metrics-dashboard"),
    path("metrics", insights.prometheus_metrics, name="prometheus"),
]

# Triage (incidents.triage): the incident page's panel and its actions.
from .triage import views as triage_views  # noqa: E402

urlpatterns += [
    path("incidents/<int:incident_id>/triage/", triage_views.triage_panel, name="triage"),
    path(
        "incidents/<int:incident_id>/triage/start/",
        triage_views.triage_start,
        name="triage-start",
    ),
    path(
        "incidents/<int:incident_id>/triage/answer/",
        triage_views.triage_answer,
        name="triage-answer",
    ),
    path("incidents/<int:incident_id>/triage/back/", triage_views.triage_back, name="triage-back"),
    path(
        "incidents/<int:incident_id>/triage/apply/",
        triage_views.triage_apply,
        name="triage-apply",
    ),
]
