"""REST endpoints for incidents: thin views that validate input, call a service or a selector,
and serialize the result. Role permissions come from the kernel; the commander-only rule from
incidents.permissions."""

from __future__ import annotations

from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.response import Response
from rest_framework.views import APIView

from config.accounts.idempotency import idempotent
from config.kernel import headers
from config.kernel.openapi import errors
from config.kernel.pagination import StandardPagination
from config.kernel.permissions import IsResponder, ReadViewerWriteResponder
from incidents import selectors, services
from incidents.filters import IncidentFilter, TimelineFilter
from incidents.models import Incident, ResponderRole, TimelineEvent
from incidents.permissions import CommandsIncident

from . import serializers as s

TAGS = ["incidents"]


ERRORS = errors(
    e400="Invalid input: an object of field names to lists of messages "
    "(plus `detail` for a rule the incident's state refuses).",
    e404="No such incident.",
)
CONFLICT = errors(409, e409="Somebody changed the incident first: re-read it and decide again.")


def _get_incident(incident_id: int) -> Incident:
    try:
        return selectors.incident_get(incident_id=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


def _ensure_exists(incident_id: int) -> None:
    if not selectors.incident_exists(incident_id=incident_id):
        raise Http404("No such incident.")


def _detail(incident_id: int) -> dict:
    try:
        incident = selectors.incident_detail_get(incident_id=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None
    return s.IncidentDetailOutputSerializer(incident).data


def _guarded(request, incident_id: int, write) -> Response:
    """Run `write` under the incident's If-Match precondition (412 when the client's ETag is
    stale); answer with the detail as it is now and its new ETag."""
    headers.guarded_write(
        request,
        lock=lambda: list(
            Incident.objects.select_for_update().filter(pk=incident_id).values_list("pk")
        ),
        current=lambda: _detail(incident_id),
        write=write,
    )
    return headers.conditional_response(request, _detail(incident_id))


class IncidentListCreateApi(ListModelMixin, GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.IncidentListOutputSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = IncidentFilter
    pagination_class = StandardPagination

    def get_queryset(self):
        return selectors.incident_summary_list()

    @extend_schema(
        tags=TAGS,
        summary="List incidents",
        responses={200: s.IncidentListOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request):
        return self.list(request)

    @extend_schema(
        tags=TAGS,
        summary="Declare an incident",
        request=s.IncidentCreateInputSerializer,
        responses={201: s.IncidentDetailOutputSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request):
        data = s.IncidentCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        incident = services.incident_declare(actor=request.user, **data.validated_data)
        return headers.created(_detail(incident.pk), "incident-detail", incident_id=incident.pk)


class IncidentDetailApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=TAGS,
        summary="Get an incident",
        parameters=headers.CONDITIONAL_GET_PARAMETERS,
        responses={200: s.IncidentDetailOutputSerializer, **headers.NOT_MODIFIED, **ERRORS},
    )
    def get(self, request, incident_id: int):
        return headers.conditional_response(request, _detail(incident_id))

    @extend_schema(
        tags=TAGS,
        summary="Edit an incident's details",
        description="Only the fields sent change; the timeline records old and new values. "
        "Status and severity have their own actions.",
        request=s.IncidentUpdateInputSerializer,
        parameters=headers.IF_MATCH_PARAMETERS,
        responses={200: s.IncidentDetailOutputSerializer, **ERRORS, **headers.PRECONDITION},
    )
    def patch(self, request, incident_id: int):
        _ensure_exists(incident_id)
        data = s.IncidentUpdateInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        return _guarded(
            request,
            incident_id,
            lambda: services.incident_update(
                incident_id=incident_id, actor=request.user, **data.validated_data
            ),
        )


class IncidentTransitionApi(APIView):
    permission_classes = [CommandsIncident]

    @extend_schema(
        tags=TAGS,
        summary="Change an incident's status",
        description="Commanders, or the incident's own Incident Commander. Illegal moves are "
        "refused with the allowed ones named; a move made on a stale read gets 409.",
        request=s.TransitionInputSerializer,
        parameters=headers.IF_MATCH_PARAMETERS,
        responses={
            200: s.IncidentDetailOutputSerializer,
            **ERRORS,
            **CONFLICT,
            **headers.PRECONDITION,
        },
    )
    def post(self, request, incident_id: int):
        incident = _get_incident(incident_id)
        self.check_object_permissions(request, incident)
        data = s.TransitionInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _guarded(
            request,
            incident.pk,
            lambda: services.incident_transition(
                incident_id=incident.pk,
                to_status=data.validated_data["status"],
                reason=data.validated_data["reason"],
                # Without the client's view, the status read above is the one this decision
                # rests on: a transition committed by someone else since then makes this one a
                # conflict. If-Match (optional) checks the whole representation the same way.
                expected_status=data.validated_data.get("expected_status", incident.status),
                actor=request.user,
            ),
        )


class IncidentSeverityApi(APIView):
    permission_classes = [CommandsIncident]

    @extend_schema(
        tags=TAGS,
        summary="Change an incident's severity",
        request=s.SeverityInputSerializer,
        parameters=headers.IF_MATCH_PARAMETERS,
        responses={200: s.IncidentDetailOutputSerializer, **ERRORS, **headers.PRECONDITION},
    )
    def post(self, request, incident_id: int):
        incident = _get_incident(incident_id)
        self.check_object_permissions(request, incident)
        data = s.SeverityInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        return _guarded(
            request,
            incident.pk,
            lambda: services.incident_change_severity(
                incident_id=incident.pk, actor=request.user, **data.validated_data
            ),
        )


class IncidentAcknowledgeApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Acknowledge an incident",
        description="Stamps the acknowledgement time the first time; later calls change nothing.",
        request=None,
        responses={200: s.IncidentDetailOutputSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int):
        _ensure_exists(incident_id)
        services.incident_acknowledge(incident_id=incident_id, actor=request.user)
        return Response(_detail(incident_id))


class IncidentRolesApi(APIView):
    permission_classes = [ReadViewerWriteResponder]

    @extend_schema(
        tags=["roles"],
        summary="Current role holders, assignment history and missing roles",
        responses={200: s.RolesOutputSerializer, **ERRORS},
    )
    def get(self, request, incident_id: int):
        incident = _get_incident(incident_id)
        history = list(selectors.assignment_history(incident_id=incident.pk))
        missing = [
            {"role": r, "label": ResponderRole(r).label}
            for r in selectors.incident_missing_roles(incident)
        ]
        body = {
            "current": [a for a in history if a.is_active],
            "history": history,
            "missing_roles": missing,
            "required_roles": services.required_roles(incident.severity),
        }
        return Response(s.RolesOutputSerializer(body).data)

    @extend_schema(
        tags=["roles"],
        summary="Assign a role",
        description="The current holder of the role, if any, is relieved and kept in history.",
        request=s.RoleAssignInputSerializer,
        responses={201: s.AssignmentOutputSerializer, **ERRORS, **CONFLICT},
    )
    def post(self, request, incident_id: int):
        _ensure_exists(incident_id)
        data = s.RoleAssignInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        assignment = services.role_assign(
            incident_id=incident_id, actor=request.user, **data.validated_data
        )
        assignment = selectors.assignment_get(assignment_id=assignment.pk)
        # An assignment has no URL of its own: the roles it joined.
        return headers.created(
            s.AssignmentOutputSerializer(assignment).data, "incident-roles", incident_id=incident_id
        )


class IncidentRoleRelieveApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=["roles"],
        summary="Relieve a role holder without a successor",
        request=None,
        responses={200: s.AssignmentOutputSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int, assignment_id: int):
        assignment = selectors.assignment_get(assignment_id=assignment_id)
        if assignment is None or assignment.incident_id != incident_id:
            raise Http404("No such assignment on this incident.")
        services.role_relieve(assignment_id=assignment_id, actor=request.user)
        return Response(
            s.AssignmentOutputSerializer(selectors.assignment_get(assignment_id=assignment_id)).data
        )


class IncidentTimelineApi(ListModelMixin, GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.TimelineEventOutputSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TimelineFilter
    pagination_class = StandardPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no incident
            return TimelineEvent.objects.none()
        return selectors.timeline_for(incident_id=self.kwargs["incident_id"])

    @extend_schema(
        tags=["timeline"],
        summary="An incident's timeline",
        responses={200: s.TimelineEventOutputSerializer(many=True), **ERRORS},
    )
    def get(self, request, incident_id: int):
        _ensure_exists(incident_id)
        return self.list(request)

    @extend_schema(
        tags=["timeline"],
        summary="Add a note to the timeline",
        request=s.NoteInputSerializer,
        responses={201: s.TimelineEventOutputSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request, incident_id: int):
        _ensure_exists(incident_id)
        data = s.NoteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        event = services.timeline_append(
            incident_id=incident_id, actor=request.user, **data.validated_data
        )
        # A note has no URL of its own: the timeline it joined.
        return headers.created(
            s.TimelineEventOutputSerializer(event).data,
            "incident-timeline",
            incident_id=incident_id,
        )


class ReportSubmitApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=["reports"],
        summary="Submit a manual report (user or internal)",
        description="With `incident`, the report becomes a note on that open incident; "
        "without it, a new incident is declared from the report. `outcome` says which.",
        request=s.ReportInputSerializer,
        responses={201: s.ReportOutputSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request):
        data = s.ReportInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        incident_id = fields.pop("incident", None)
        incident, event, declared = services.report_submit(
            incident_id=incident_id, actor=request.user, **fields
        )
        body = {
            "outcome": "incident_created" if declared else "note_added",
            "created": declared,
            "incident": selectors.incident_detail_get(incident_id=incident.pk),
            "event": event,
        }
        return headers.created(
            s.ReportOutputSerializer(body).data, "incident-detail", incident_id=incident.pk
        )
