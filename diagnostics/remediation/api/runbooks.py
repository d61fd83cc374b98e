"""/api/v1/diagnostics/runbooks/ and an incident's runbooks: list, start, tick or untick steps.

Viewers read; responders start runbooks and tick steps (each tick is a timeline event).
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from config.kernel.headers import location
from config.kernel.openapi import ERRORS
from config.kernel.pagination import StandardPagination, paginated
from config.kernel.permissions import IsResponder, IsViewer, ReadViewerWriteResponder
from diagnostics.remediation.models import (
    IncidentRunbook,
    IncidentRunbookStep,
    Runbook,
    RunbookStep,
)
from diagnostics.remediation.runbooks import selectors, services
from incidents.models import Incident

TAGS = ["diagnostics"]


class RunbookStepSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunbookStep
        fields = ["id", "position", "title", "detail", "action"]
        read_only_fields = fields


class RunbookSerializer(serializers.ModelSerializer):
    steps = RunbookStepSerializer(many=True, read_only=True)

    class Meta:
        model = Runbook
        fields = ["id", "key", "title", "description", "steps"]
        read_only_fields = fields


class IncidentRunbookStepSerializer(serializers.ModelSerializer):
    done_by = serializers.CharField(source="done_by.username", default=None, allow_null=True)

    class Meta:
        model = IncidentRunbookStep
        fields = [
            "id",
            "position",
            "title",
            "detail",
            "action",
            "done",
            "done_by",
            "done_at",
            "note",
        ]
        read_only_fields = fields


class ProgressSerializer(serializers.Serializer):
    done = serializers.IntegerField()
    total = serializers.IntegerField()


class IncidentRunbookSerializer(serializers.ModelSerializer):
    runbook = serializers.CharField(source="runbook.key")
    started_by = serializers.CharField(source="started_by.username", default=None, allow_null=True)
    steps = IncidentRunbookStepSerializer(many=True, read_only=True)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = IncidentRunbook
        fields = [
            "id",
            "runbook",
            "title",
            "incident",
            "started_by",
            "started_at",
            "completed_at",
            "progress",
            "steps",
        ]
        read_only_fields = fields

    @extend_schema_field(ProgressSerializer)
    def get_progress(self, obj) -> dict:
        done, total = obj.progress
        return {"done": done, "total": total}


class RunbookStartInputSerializer(serializers.Serializer):
    runbook = serializers.CharField(help_text="The runbook's id or key (e.g. quick-mitigation).")


class StepInputSerializer(serializers.Serializer):
    done = serializers.BooleanField()
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


def _incident(incident_id: int) -> None:
    if not Incident.objects.filter(pk=incident_id).exists():
        raise Http404("No such incident.")


def _run(incident_id: int, run_id: int) -> IncidentRunbook:
    run = selectors.incident_runbooks(incident_id=incident_id).filter(pk=run_id).first()
    if run is None:
        raise Http404("No such runbook on this incident.")
    return run


class RunbookListApi(APIView):
    permission_classes = [IsViewer]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_runbooks_list",
        summary="Runbook definitions (checklists) with their steps",
        responses=RunbookSerializer(many=True),
    )
    def get(self, request):
        return paginated(
            request,
            self,
            selectors.runbook_list(),
            lambda page: RunbookSerializer(page, many=True).data,
        )


class IncidentRunbooksApi(APIView):
    permission_classes = [ReadViewerWriteResponder]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_incident_runbooks_list",
        summary="Runbooks started on an incident, with progress",
        responses={200: IncidentRunbookSerializer(many=True), **ERRORS},
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        runs = selectors.incident_runbooks(incident_id=incident_id)
        return paginated(
            request, self, runs, lambda page: IncidentRunbookSerializer(page, many=True).data
        )

    @extend_schema(
        tags=TAGS,
        summary="Start a runbook on an incident (201; 200 with the run when already started)",
        request=RunbookStartInputSerializer,
        responses={201: IncidentRunbookSerializer, 200: IncidentRunbookSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int):
        _incident(incident_id)
        data = RunbookStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run, created = services.runbook_start(
            incident_id=incident_id, runbook=data.validated_data["runbook"], actor=request.user
        )
        body = IncidentRunbookSerializer(_run(incident_id, run.pk)).data
        if not created:
            return Response(body)
        headers = location("diagnostics-incident-runbooks", incident_id=incident_id)
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)


class RunbookStepApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Tick (done: true) or untick a step, with an optional note",
        request=StepInputSerializer,
        responses={200: IncidentRunbookSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int, run_id: int, step_id: int):
        _incident(incident_id)
        _run(incident_id, run_id)
        data = StepInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.runbook_step_set(
            incident_id=incident_id,
            run_id=run_id,
            step_id=step_id,
            done=data.validated_data["done"],
            note=data.validated_data["note"],
            actor=request.user,
        )
        return Response(IncidentRunbookSerializer(_run(incident_id, run_id)).data)
