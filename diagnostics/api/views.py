"""REST endpoints for diagnostics: thin views that validate input, call a service or a
selector, and serialize the result.

viewers read; responders run diagnostics, test connections and link targets to incidents;
admins manage targets. Reading runs and results never connects to a target.
"""

from __future__ import annotations

import django_filters
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.response import Response
from rest_framework.views import APIView

from config.accounts.idempotency import idempotent
from config.kernel.filters import ChangedSinceFilterSet, InstantFilter
from config.kernel.headers import location
from config.kernel.openapi import ERRORS
from config.kernel.pagination import StandardPagination, paginated
from config.kernel.permissions import (
    IsResponder,
    IsViewer,
    ReadViewerWriteAdmin,
    ReadViewerWriteResponder,
)
from incidents.models import Incident

from .. import query_texts, selectors, services
from ..models import DiagnosticRun, TargetDatabase, Trigger
from . import serializers as s

TAGS = ["diagnostics"]


def target_or_404(target_id: int) -> TargetDatabase:
    try:
        return TargetDatabase.objects.get(pk=target_id)
    except TargetDatabase.DoesNotExist:
        raise Http404("No such target.") from None


def _run(run_id: int) -> DiagnosticRun:
    try:
        return selectors.run_get(run_id=run_id)
    except DiagnosticRun.DoesNotExist:
        raise Http404("No such diagnostic run.") from None


def _incident(incident_id: int) -> Incident:
    try:
        return Incident.objects.get(pk=incident_id)
    except Incident.DoesNotExist:
        raise Http404("No such incident.") from None


def _accepted(request, run: DiagnosticRun) -> Response:
    """202 Accepted with the run in the body and its URL in Location."""
    body = s.RunSerializer(run, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


# --- targets -------------------------------------------------------------------------------


class TargetFilter(django_filters.FilterSet):
    tag = django_filters.CharFilter(method="filter_tag")

    class Meta:
        model = TargetDatabase
        fields = ["environment", "enabled", "remediation_allowed"]

    def filter_tag(self, qs, name, value):
        return qs.filter(tags__contains=[value.strip().lower()])


class TargetListCreateApi(GenericAPIView):
    permission_classes = [ReadViewerWriteAdmin]
    serializer_class = s.TargetOutputSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = TargetFilter
    pagination_class = StandardPagination
    queryset = TargetDatabase.objects.none()

    def get_queryset(self):
        return selectors.target_list()

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_targets_list",
        summary="List target databases",
        responses=s.TargetOutputSerializer(many=True),
    )
    def get(self, request):
        qs = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        tags=TAGS,
        summary="Register a target database (admin)",
        request=s.TargetInputSerializer,
        responses={201: s.TargetOutputSerializer, **ERRORS},
    )
    def post(self, request):
        data = s.TargetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        target = services.target_create(**data.validated_data, actor=request.user)
        body = s.TargetOutputSerializer(target, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class TargetDetailApi(APIView):
    permission_classes = [ReadViewerWriteAdmin]

    @extend_schema(
        tags=TAGS, summary="A target database", responses={200: s.TargetOutputSerializer, **ERRORS}
    )
    def get(self, request, pk: int):
        return Response(
            s.TargetOutputSerializer(target_or_404(pk), context={"request": request}).data
        )

    def _change(self, request, pk: int, *, partial: bool):
        target_or_404(pk)
        data = s.TargetInputSerializer(data=request.data, partial=partial)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        if partial:
            # A partial serializer still fills defaults for absent fields: keep only what came.
            changes = {k: v for k, v in changes.items() if k in request.data}
        password = changes.pop("password", None)
        dsn = changes.pop("dsn", None)
        target = services.target_update(
            target_id=pk, actor=request.user, password=password, dsn=dsn, **changes
        )
        return Response(s.TargetOutputSerializer(target, context={"request": request}).data)

    @extend_schema(
        tags=TAGS,
        summary="Replace a target's settings (admin); omit password/dsn to keep them",
        request=s.TargetInputSerializer,
        responses={200: s.TargetOutputSerializer, **ERRORS},
    )
    def put(self, request, pk: int):
        return self._change(request, pk, partial=False)

    @extend_schema(
        tags=TAGS,
        summary="Change some of a target's settings (admin)",
        request=s.TargetInputSerializer,
        responses={200: s.TargetOutputSerializer, **ERRORS},
    )
    def patch(self, request, pk: int):
        return self._change(request, pk, partial=True)

    @extend_schema(
        tags=TAGS,
        summary="Delete a target that has no runs or incident links (admin)",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, pk: int):
        target_or_404(pk)
        services.target_delete(target_id=pk, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class TargetTestConnectionApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Test the connection: reachability, latency, version, recovery, platform, "
        "missing privileges and extensions (with the statement that grants each)",
        request=None,
        responses={200: s.TestConnectionOutputSerializer, **ERRORS},
    )
    def post(self, request, pk: int):
        target_or_404(pk)
        return Response(services.target_test_connection(target_id=pk))


class TargetRunsApi(GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.RunSerializer
    pagination_class = StandardPagination
    queryset = DiagnosticRun.objects.none()

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_target_runs_list",
        summary="A target's runs, newest first",
        responses=s.RunSerializer(many=True),
    )
    def get(self, request, pk: int):
        target_or_404(pk)
        page = self.paginate_queryset(selectors.run_list(filters={"target_id": pk}))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    @extend_schema(
        tags=TAGS,
        summary="Run diagnostics on this target (202, the run's URL in Location)",
        request=s.TargetRunInputSerializer,
        responses={202: s.RunSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request, pk: int):
        target_or_404(pk)
        data = s.TargetRunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        run = services.diagnostic_run_start(
            target_id=pk,
            incident_id=data.validated_data["incident"],
            trigger=Trigger.API,
            requested_by=request.user,
            suite=data.suite(),
        )
        return _accepted(request, run)


class CheckHistoryApi(GenericAPIView):
    permission_classes = [IsViewer]
    serializer_class = s.CheckHistorySerializer
    pagination_class = StandardPagination
    queryset = DiagnosticRun.objects.none()

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_check_history_list",
        summary="One check's results on one target across runs, newest first",
        responses=s.CheckHistorySerializer(many=True),
    )
    def get(self, request, pk: int, key: str):
        target_or_404(pk)
        page = self.paginate_queryset(selectors.check_history(target_id=pk, key=key))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


# --- runs ----------------------------------------------------------------------------------


class RunFilter(ChangedSinceFilterSet):
    """Runs by target, incident, status...; changed since a time: queued, started or finished
    (incremental sync)."""

    queued_after = InstantFilter(field_name="queued_at", lookup_expr="gte")
    queued_before = InstantFilter(field_name="queued_at", lookup_expr="lt")

    class Meta:
        model = DiagnosticRun
        fields = ["target", "incident", "status", "trigger", "worst_status"]


class RunListCreateApi(ListModelMixin, GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = s.RunSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RunFilter
    pagination_class = StandardPagination
    queryset = DiagnosticRun.objects.none()

    def get_queryset(self):
        return selectors.run_list()

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_runs_list",
        summary="Diagnostic runs, newest first",
        responses=s.RunSerializer(many=True),
    )
    def get(self, request):
        return self.list(request)

    @extend_schema(
        tags=TAGS,
        summary="Run diagnostics on one target (202 with Location) or fan out over targets, "
        "an environment or a tag (202 with every run)",
        request=s.RunCreateInputSerializer,
        responses={
            202: PolymorphicProxySerializer(
                component_name="RunStarted",
                serializers=[s.RunSerializer, s.RunFanOutSerializer],
                resource_type_field_name=None,
            ),
            **ERRORS,
        },
    )
    @idempotent
    def post(self, request):
        data = s.RunCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        if v["target"] is not None:
            run = services.diagnostic_run_start(
                target_id=v["target"],
                incident_id=v["incident"],
                trigger=Trigger.API,
                requested_by=request.user,
                suite=data.suite(),
            )
            return _accepted(request, run)
        runs = services.diagnostic_runs_fan_out(
            environment=v["environment"] or None,
            tag=v["tag"] or None,
            target_ids=v["targets"] or None,
            suite=data.suite(),
            trigger=Trigger.API,
            requested_by=request.user,
            incident_id=v["incident"],
        )
        body = {"runs": s.RunSerializer(runs, many=True, context={"request": request}).data}
        return Response(body, status=status.HTTP_202_ACCEPTED)


class RunDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="A run's status and results (readable when the target is down)",
        responses={200: s.RunDetailSerializer, **ERRORS},
    )
    def get(self, request, pk: int):
        return Response(s.RunDetailSerializer(_run(pk), context={"request": request}).data)


class RunCompareApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Compare two runs of the same target: findings appeared and cleared, status "
        "changes, counters' change and change per second",
        parameters=[
            OpenApiParameter(
                "with",
                OpenApiTypes.INT,
                description="The other run (default: the target's previous succeeded run).",
            )
        ],
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request, pk: int):
        run = _run(pk)
        other = request.query_params.get("with")
        if other:
            try:
                other_id = int(other)
            except ValueError:
                raise serializers.ValidationError({"with": ["Must be a run id."]}) from None
        else:
            previous = selectors.previous_finished_run(run=run)
            if previous is None:
                raise serializers.ValidationError(
                    {"with": ["This target has no earlier succeeded run; name one with ?with=."]}
                )
            other_id = previous.pk
        comparison = selectors.run_compare(base_run_id=other_id, head_run_id=run.pk)
        return Response(query_texts.for_user(comparison, request.user))


# --- checks --------------------------------------------------------------------------------


class CheckListApi(APIView):
    permission_classes = [IsViewer]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        summary="The registered checks (keys and families usable in a suite)",
        responses=s.CheckInfoSerializer(many=True),
    )
    def get(self, request):
        from ..checks import registry

        rows = [
            {
                "key": c.key,
                "title": c.title,
                "family": str(c.family),
                "description": c.description,
                "min_server_version": c.min_server_version,
                "default_thresholds": c.default_thresholds,
            }
            for c in registry.all()
        ]
        return paginated(request, self, rows)


# --- incidents -----------------------------------------------------------------------------


class IncidentTargetsApi(APIView):
    permission_classes = [ReadViewerWriteResponder]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        summary="An incident's affected targets",
        responses={200: s.IncidentTargetSerializer(many=True), **ERRORS},
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        links = selectors.incident_targets(incident_id=incident_id)
        return paginated(
            request,
            self,
            links,
            lambda page: (
                s.IncidentTargetSerializer(page, many=True, context={"request": request}).data
            ),
        )

    @extend_schema(
        tags=TAGS,
        summary="Mark a target as affected; on an open incident a run starts at once",
        request=s.IncidentTargetInputSerializer,
        responses={201: s.IncidentTargetAddedSerializer, **ERRORS},
    )
    def post(self, request, incident_id: int):
        _incident(incident_id)
        data = s.IncidentTargetInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        link = services.incident_target_add(
            incident_id=incident_id,
            target_id=data.validated_data["target"],
            actor=request.user,
            start_run=data.validated_data["start_run"],
        )
        run = selectors.latest_run(target_id=link.target_id, incident_id=incident_id)
        ctx = {"request": request}
        return Response(
            {
                "link": s.IncidentTargetSerializer(link, context=ctx).data,
                "run": s.RunSerializer(run, context=ctx).data if run else None,
            },
            status=status.HTTP_201_CREATED,
            headers=location("diagnostics-incident-targets", incident_id=incident_id),
        )


class IncidentTargetDetailApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Unmark an affected target (its runs stay on record)",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, incident_id: int, target_id: int):
        _incident(incident_id)
        services.incident_target_remove(
            incident_id=incident_id, target_id=target_id, actor=request.user
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class IncidentSummaryApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Per affected target, what its latest run found",
        responses={200: OpenApiTypes.OBJECT, **ERRORS},
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        summary = selectors.incident_diagnostics_summary(incident_id=incident_id)
        return Response(query_texts.for_user(summary, request.user))


class IncidentRunsApi(GenericAPIView):
    permission_classes = [IsViewer]
    serializer_class = s.RunSerializer
    pagination_class = StandardPagination
    queryset = DiagnosticRun.objects.none()

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_incident_runs_list",
        summary="Runs linked to an incident",
        responses=s.RunSerializer(many=True),
    )
    def get(self, request, incident_id: int):
        _incident(incident_id)
        page = self.paginate_queryset(selectors.incident_runs(incident_id=incident_id))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)


class DeclareWithTargetsApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Declare an incident with its affected targets; each gets a run at detection",
        request=s.DeclareInputSerializer,
        responses={201: s.DeclareOutputSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request):
        data = s.DeclareInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        target_ids = values.pop("affected_targets")
        incident, runs = services.incident_declare_with_targets(
            target_ids=target_ids, actor=request.user, **values
        )
        body = {
            "incident": incident.pk,
            "incident_title": incident.title,
            "runs": s.RunSerializer(runs, many=True, context={"request": request}).data,
        }
        headers = location("incident-detail", incident_id=incident.pk)
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)
