"""REST endpoints for data integrity (mounted from diagnostics/api/urls.py).

Viewers read checks, runs and results; responders run checks (and ask for suggestions, which
reads the target's catalog); admins define, change and delete checks. Errors are 400 with the
field named.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from config.accounts.idempotency import idempotent
from config.kernel.headers import location
from config.kernel.openapi import ERRORS
from config.kernel.pagination import StandardPagination, paginated
from config.kernel.permissions import (
    ADMIN,
    RESPONDER,
    IsViewer,
    ReadViewerWriteAdmin,
    ReadViewerWriteResponder,
    ReadWriteRolePermission,
)
from diagnostics.api.views import target_or_404
from diagnostics.integrity import selectors, services, suggest
from diagnostics.integrity.compiler import IntegrityCheckError
from diagnostics.integrity.models import (
    IntegrityCheck,
    IntegrityKind,
    IntegrityPurpose,
    IntegrityResult,
    IntegrityRun,
    IntegritySeverity,
)

TAGS = ["integrity"]


class SuggestPermission(ReadWriteRolePermission):
    message = "Suggestions need the responder role; creating checks from them needs admin."
    read_role = RESPONDER
    write_role = ADMIN


# --- serializers ---------------------------------------------------------------------------


class IntegrityCheckSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    gate_key = serializers.CharField(read_only=True)
    kind = serializers.ChoiceField(choices=IntegrityKind.choices)
    severity = serializers.ChoiceField(choices=IntegritySeverity.choices, default="high")
    columns = serializers.ListField(
        child=serializers.CharField(max_length=63), required=False, default=list
    )
    parent_columns = serializers.ListField(
        child=serializers.CharField(max_length=63), required=False, default=list
    )

    class Meta:
        model = IntegrityCheck
        # The editable fields are the ones the services accept.
        fields = [
            "id",
            "url",
            "target",
            "gate_key",
            *services.CHECK_FIELDS,
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "url", "target", "gate_key", "created_at", "updated_at"]
        extra_kwargs = {
            "name": {"validators": []},
            "schema_name": {"required": False},
        }

    def get_url(self, obj) -> str:
        return reverse(
            "diagnostics-integrity-check-detail",
            kwargs={"pk": obj.pk},
            request=self.context.get("request"),
        )


class IntegrityResultSerializer(serializers.ModelSerializer):
    check_id = serializers.IntegerField(source="integrity_check_id", read_only=True)

    class Meta:
        model = IntegrityResult
        fields = [
            "id",
            "check_id",
            "check_name",
            "kind",
            "severity",
            "status",
            "count",
            "expected",
            "sample_columns",
            "sample",
            "metrics",
            "sql",
            "duration_ms",
            "error",
        ]
        read_only_fields = fields


class IntegrityRunSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = IntegrityRun
        fields = [
            "id",
            "url",
            *IntegrityRun.RUN_FIELDS,
            "duration_ms",
            *IntegrityRun.OUTCOME_FIELDS,
        ]
        read_only_fields = fields

    def get_url(self, obj) -> str:
        return reverse(
            "diagnostics-integrity-run-detail",
            kwargs={"pk": obj.pk},
            request=self.context.get("request"),
        )


class IntegrityRunDetailSerializer(IntegrityRunSerializer):
    results = IntegrityResultSerializer(many=True, read_only=True)

    class Meta(IntegrityRunSerializer.Meta):
        fields = [*IntegrityRunSerializer.Meta.fields, "results"]
        read_only_fields = fields


class RunInputSerializer(serializers.Serializer):
    # A person chooses among these; monitor runs are the monitors' own.
    purpose = serializers.ChoiceField(
        choices=[c for c in IntegrityPurpose.choices if c[0] != IntegrityPurpose.MONITOR],
        default="adhoc",
    )
    incident = serializers.IntegerField(required=False, allow_null=True, default=None)
    checks = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    baseline = serializers.IntegerField(required=False, allow_null=True, default=None)


class ComparisonItemSerializer(serializers.Serializer):
    check_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    kind = serializers.CharField()
    before = serializers.IntegerField(allow_null=True)
    after = serializers.IntegerField(allow_null=True)
    delta = serializers.IntegerField(allow_null=True)
    before_status = serializers.CharField(allow_null=True)
    after_status = serializers.CharField(allow_null=True)
    outcome = serializers.CharField()


class ComparisonSerializer(serializers.Serializer):
    base = serializers.DictField()
    head = serializers.DictField()
    counts = serializers.DictField(child=serializers.IntegerField())
    checks = ComparisonItemSerializer(many=True)


class SuggestionSerializer(serializers.Serializer):
    name = serializers.CharField()
    kind = serializers.CharField()
    reason = serializers.CharField()
    exists = serializers.BooleanField()
    definition = serializers.DictField()


class ApplySuggestionsSerializer(serializers.Serializer):
    names = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        default=list,
        help_text="Names of the suggestions to create; empty creates every new one.",
    )


# --- helpers -------------------------------------------------------------------------------


def _check(pk: int) -> IntegrityCheck:
    check = IntegrityCheck.objects.filter(pk=pk).first()
    if check is None:
        raise Http404("No such integrity check.")
    return check


def _run(pk: int) -> IntegrityRun:
    try:
        return selectors.run_get(run_id=pk)
    except IntegrityRun.DoesNotExist:
        raise Http404("No such integrity run.") from None


def _input(request, *, partial: bool) -> dict:
    data = IntegrityCheckSerializer(data=request.data, partial=partial)
    data.is_valid(raise_exception=True)
    values = dict(data.validated_data)
    if partial:
        values = {k: v for k, v in values.items() if k in request.data}
    return values


# --- views ---------------------------------------------------------------------------------


class TargetChecksApi(GenericAPIView):
    permission_classes = [ReadViewerWriteAdmin]
    serializer_class = IntegrityCheckSerializer
    queryset = IntegrityCheck.objects.none()
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        operation_id="integrity_target_checks_list",
        summary="A target's integrity checks",
        responses=IntegrityCheckSerializer(many=True),
    )
    def get(self, request, pk: int):
        target_or_404(pk)
        checks = selectors.check_list(target_id=pk)
        return paginated(
            request, self, checks, lambda page: self.get_serializer(page, many=True).data
        )

    @extend_schema(
        tags=TAGS,
        summary="Define an integrity check on this target (admin)",
        request=IntegrityCheckSerializer,
        responses={201: IntegrityCheckSerializer, **ERRORS},
    )
    def post(self, request, pk: int):
        target_or_404(pk)
        check = services.integrity_check_create(
            target_id=pk, actor=request.user, **_input(request, partial=False)
        )
        body = self.get_serializer(check).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class PreviewSerializer(serializers.Serializer):
    sql = serializers.CharField()
    estimated_rows = serializers.FloatField(allow_null=True)
    estimated_cost = serializers.FloatField(allow_null=True)
    error = serializers.CharField(allow_blank=True)


class CheckPreviewApi(APIView):
    permission_classes = [ReadViewerWriteAdmin]

    @extend_schema(
        tags=TAGS,
        summary="Validate a check definition and EXPLAIN it on the target without saving or "
        "running it (admin): the SQL, the planner's estimates, or the target's error",
        request=IntegrityCheckSerializer,
        responses={200: PreviewSerializer, **ERRORS},
    )
    def post(self, request, pk: int):
        target_or_404(pk)
        values = _input(request, partial=False)
        return Response(services.integrity_check_preview(target_id=pk, **values))


class CheckDetailApi(GenericAPIView):
    permission_classes = [ReadViewerWriteAdmin]
    serializer_class = IntegrityCheckSerializer
    queryset = IntegrityCheck.objects.none()

    @extend_schema(
        tags=TAGS, summary="An integrity check", responses={200: IntegrityCheckSerializer, **ERRORS}
    )
    def get(self, request, pk: int):
        return Response(self.get_serializer(_check(pk)).data)

    def _change(self, request, pk: int, partial: bool):
        _check(pk)
        check = services.integrity_check_update(
            check_id=pk, actor=request.user, **_input(request, partial=partial)
        )
        return Response(self.get_serializer(check).data)

    @extend_schema(
        tags=TAGS,
        summary="Replace a check's definition (admin)",
        request=IntegrityCheckSerializer,
        responses={200: IntegrityCheckSerializer, **ERRORS},
    )
    def put(self, request, pk: int):
        return self._change(request, pk, partial=False)

    @extend_schema(
        tags=TAGS,
        summary="Change part of a check's definition (admin)",
        request=IntegrityCheckSerializer,
        responses={200: IntegrityCheckSerializer, **ERRORS},
    )
    def patch(self, request, pk: int):
        return self._change(request, pk, partial=True)

    @extend_schema(
        tags=TAGS,
        summary="Delete a check (admin); past results keep a snapshot",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, pk: int):
        _check(pk)
        services.integrity_check_delete(check_id=pk, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class CheckResultsApi(GenericAPIView):
    permission_classes = [IsViewer]
    serializer_class = IntegrityResultSerializer
    queryset = IntegrityResult.objects.none()
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        operation_id="integrity_check_results_list",
        summary="One check's results across runs, newest first",
        responses=IntegrityResultSerializer(many=True),
    )
    def get(self, request, pk: int):
        _check(pk)
        rows = IntegrityResult.objects.filter(integrity_check_id=pk).order_by("-run_id", "-id")
        return paginated(
            request, self, rows, lambda page: self.get_serializer(page, many=True).data
        )


class SuggestionsApi(APIView):
    permission_classes = [SuggestPermission]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        summary="Checks proposed from the target's catalog: orphan checks "
        "from foreign keys (and *_id columns without one), duplicate checks from "
        "unique constraints and indexes, record counts, critical records, rules",
        responses={200: SuggestionSerializer(many=True), **ERRORS},
    )
    def get(self, request, pk: int):
        target = target_or_404(pk)
        return paginated(request, self, suggest.suggestions_for(target))

    @extend_schema(
        tags=TAGS,
        summary="Create suggested checks (admin)",
        request=ApplySuggestionsSerializer,
        responses={201: IntegrityCheckSerializer(many=True), **ERRORS},
    )
    def post(self, request, pk: int):
        target = target_or_404(pk)
        data = ApplySuggestionsSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        created = suggest.apply_suggestions(
            target, names=data.validated_data["names"] or None, actor=request.user
        )
        body = IntegrityCheckSerializer(created, many=True, context={"request": request}).data
        # Several checks at once: the target's checks, where they now are.
        headers = location("diagnostics-integrity-target-checks", pk=target.pk)
        return Response(body, status=status.HTTP_201_CREATED, headers=headers)


def _accepted(request, run: IntegrityRun) -> Response:
    body = IntegrityRunSerializer(run, context={"request": request}).data
    return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})


class TargetRunsApi(GenericAPIView):
    permission_classes = [ReadViewerWriteResponder]
    serializer_class = IntegrityRunSerializer
    queryset = IntegrityRun.objects.none()
    pagination_class = StandardPagination
    query_parameters = ("incident",)

    @extend_schema(
        tags=TAGS,
        operation_id="integrity_target_runs_list",
        summary="A target's integrity runs, newest first",
        parameters=[OpenApiParameter("incident", OpenApiTypes.INT)],
        responses=IntegrityRunSerializer(many=True),
    )
    def get(self, request, pk: int):
        target_or_404(pk)
        incident = request.query_params.get("incident")
        if incident is not None and not str(incident).isdigit():
            raise IntegrityCheckError("incident must be a number.", field="incident")
        runs = selectors.run_list(
            target_id=pk, incident_id=int(incident) if incident is not None else None
        )
        return paginated(
            request, self, runs, lambda page: self.get_serializer(page, many=True).data
        )

    @extend_schema(
        tags=TAGS,
        summary="Run this target's integrity checks: baseline before "
        "remediation, verification after, or ad hoc (202, run URL in Location)",
        request=RunInputSerializer,
        responses={202: IntegrityRunSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request, pk: int):
        target_or_404(pk)
        data = RunInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        run = services.integrity_run_start(
            target_id=pk,
            purpose=v["purpose"],
            incident_id=v["incident"],
            check_ids=v["checks"],
            baseline_id=v["baseline"],
            requested_by=request.user,
        )
        return _accepted(request, run)


class RunDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="An integrity run with every check's result",
        responses={200: IntegrityRunDetailSerializer, **ERRORS},
    )
    def get(self, request, pk: int):
        context = {"request": request}
        return Response(IntegrityRunDetailSerializer(_run(pk), context=context).data)


class RunCompareApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="Compare a run with its baseline (or ?with=<run id> of "
        "the same target): per check before, after, delta and outcome",
        parameters=[OpenApiParameter("with", OpenApiTypes.INT)],
        responses={200: ComparisonSerializer, **ERRORS},
    )
    def get(self, request, pk: int):
        run = _run(pk)
        other = None
        raw = request.query_params.get("with")
        if raw:
            if not raw.isdigit():
                raise IntegrityCheckError("with must be a run id.", field="with")
            other = IntegrityRun.objects.filter(pk=int(raw)).first()
            if other is None or other.target_id != run.target_id:
                raise IntegrityCheckError(
                    "with must be another run of the same target.", field="with"
                )
        comparison = selectors.run_compare(run, other=other)
        if comparison is None:
            raise IntegrityCheckError(
                "This run has no baseline; name a run to compare with (?with=).", field="with"
            )
        return Response(comparison)
