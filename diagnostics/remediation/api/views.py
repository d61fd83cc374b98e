"""/api/v1/diagnostics/remediations/: preview, execute with the confirmed backends, list.

Viewers read the record; previewing and executing need commander rights on the incident (the
commander group or its Incident Commander), or the admin role for a remediation outside an
incident; force is for admins. The services enforce it (403), the serializers check shapes
(400 with field messages).
"""

from __future__ import annotations

import django_filters
from django.http import Http404
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import GenericAPIView
from rest_framework.mixins import ListModelMixin
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from config.accounts.idempotency import idempotent
from config.kernel.openapi import ERRORS
from config.kernel.pagination import StandardPagination
from config.kernel.permissions import IsResponder, IsViewer
from diagnostics import query_texts
from diagnostics.remediation import backends as b
from diagnostics.remediation import services
from diagnostics.remediation.models import RemediationAction, RemediationKind

TAGS = ["diagnostics"]


class RemediationFiltersSerializer(serializers.Serializer):
    """One pid, or conditions all of which a backend must meet (at least one)."""

    pid = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    states = serializers.ListField(
        child=serializers.ChoiceField(choices=b.STATES), required=False, default=list
    )
    idle_in_transaction = serializers.BooleanField(
        required=False, default=False, help_text="Shorthand for both idle-in-transaction states."
    )
    min_duration_s = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0,
        help_text="Running (active) or in its transaction (idle in transaction) at least this "
        "long; the playbook uses 300.",
    )
    user = serializers.CharField(required=False, allow_blank=True, default="")
    application = serializers.CharField(required=False, allow_blank=True, default="")
    query_contains = serializers.CharField(required=False, allow_blank=True, default="")


class RemediationPreviewInputSerializer(serializers.Serializer):
    target = serializers.IntegerField()
    incident = serializers.IntegerField(required=False, allow_null=True, default=None)
    kind = serializers.ChoiceField(choices=RemediationKind.choices)
    filters = RemediationFiltersSerializer()
    force = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Admins only: include superuser and replication sessions.",
    )
    grace_s = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        max_value=3600,
        help_text="cancel_then_terminate: seconds before what is still running is terminated.",
    )
    database = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Optional; must be the target's own database (no other is ever touched).",
    )


class ConfirmedBackendSerializer(serializers.Serializer):
    pid = serializers.IntegerField(min_value=1)
    backend_start = serializers.DateTimeField()


class RemediationExecuteInputSerializer(serializers.Serializer):
    confirmed = ConfirmedBackendSerializer(many=True, allow_empty=False)


class BackendSerializer(serializers.Serializer):
    pid = serializers.IntegerField()
    backend_start = serializers.CharField(allow_null=True)
    user = serializers.CharField(allow_null=True)
    application = serializers.CharField()
    client = serializers.CharField()
    state = serializers.CharField(allow_null=True)
    backend_type = serializers.CharField(allow_null=True)
    database = serializers.CharField(allow_null=True)
    duration_s = serializers.FloatField(allow_null=True)
    query_start = serializers.CharField(allow_null=True)
    wait_event = serializers.CharField()
    query = serializers.CharField()
    superuser = serializers.BooleanField()
    replication = serializers.BooleanField()
    eligible = serializers.BooleanField()
    reason = serializers.CharField()


class BackendResultSerializer(serializers.Serializer):
    pid = serializers.IntegerField()
    backend_start = serializers.CharField()
    outcome = serializers.ChoiceField(choices=b.OUTCOMES)
    action = serializers.CharField(required=False)
    detail = serializers.CharField()


class RemediationActionSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    target_name = serializers.CharField(source="target.name", read_only=True)
    requested_by = serializers.CharField(
        source="requested_by.username", default=None, allow_null=True
    )
    executed_by = serializers.CharField(
        source="executed_by.username", default=None, allow_null=True
    )
    preview = BackendSerializer(many=True)
    confirmed = ConfirmedBackendSerializer(many=True)
    results = BackendResultSerializer(many=True)
    escalation_results = BackendResultSerializer(many=True)

    class Meta:
        model = RemediationAction
        fields = [
            "id",
            "url",
            "target",
            "target_name",
            "incident",
            "kind",
            "filters",
            "force",
            "grace_s",
            "status",
            "database",
            "server_version_num",
            "preview",
            "confirmed",
            "results",
            "escalation_results",
            "summary",
            "error",
            "requested_by",
            "executed_by",
            "previewed_at",
            "executed_at",
            "finished_at",
            "escalate_at",
            "escalated_at",
        ]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        user = getattr(self.context.get("request"), "user", None)
        for field in ("preview", "results", "escalation_results"):
            data[field] = query_texts.for_user(data[field], user)
        return data

    @extend_schema_field(serializers.URLField())
    def get_url(self, obj) -> str:
        return reverse(
            "diagnostics-remediation-detail",
            kwargs={"pk": obj.pk},
            request=self.context.get("request"),
        )


class RemediationFilter(django_filters.FilterSet):
    class Meta:
        model = RemediationAction
        fields = ["target", "incident", "status", "kind"]


def _action(pk: int) -> RemediationAction:
    action = RemediationAction.objects.select_related("target").filter(pk=pk).first()
    if action is None:
        raise Http404("No such remediation.")
    return action


class RemediationListApi(ListModelMixin, GenericAPIView):
    permission_classes = [IsViewer]
    serializer_class = RemediationActionSerializer
    filter_backends = [DjangoFilterBackend]
    filterset_class = RemediationFilter
    pagination_class = StandardPagination
    queryset = RemediationAction.objects.none()

    def get_queryset(self):
        return RemediationAction.objects.select_related("target", "requested_by", "executed_by")

    @extend_schema(
        tags=TAGS,
        operation_id="diagnostics_remediations_list",
        summary="Remediation actions (audit), newest first",
        responses=RemediationActionSerializer(many=True),
    )
    def get(self, request):
        return self.list(request)


class RemediationDetailApi(APIView):
    permission_classes = [IsViewer]

    @extend_schema(
        tags=TAGS,
        summary="One remediation: preview, confirmed backends, results",
        responses={200: RemediationActionSerializer, **ERRORS},
    )
    def get(self, request, pk: int):
        return Response(RemediationActionSerializer(_action(pk), context={"request": request}).data)


class RemediationPreviewApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Preview a cancel/terminate: exactly which backends it would hit, and which the "
        "guardrails refuse (commander or the incident's IC; admin outside an incident)",
        request=RemediationPreviewInputSerializer,
        responses={201: RemediationActionSerializer, **ERRORS},
    )
    @idempotent
    def post(self, request):
        data = RemediationPreviewInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        action = services.remediation_preview(
            target_id=v["target"],
            incident_id=v["incident"],
            kind=v["kind"],
            filters=v["filters"],
            force=v["force"],
            grace_s=v["grace_s"],
            database=v["database"],
            actor=request.user,
        )
        body = RemediationActionSerializer(action, context={"request": request}).data
        return Response(body, status=status.HTTP_201_CREATED, headers={"Location": body["url"]})


class RemediationExecuteApi(APIView):
    permission_classes = [IsResponder]

    @extend_schema(
        tags=TAGS,
        summary="Execute a preview on the confirmed (pid, backend_start) pairs; each is "
        "re-checked right before it is signalled",
        request=RemediationExecuteInputSerializer,
        responses={200: RemediationActionSerializer, **ERRORS},
    )
    def post(self, request, pk: int):
        _action(pk)
        data = RemediationExecuteInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        action = services.remediation_execute(
            action_id=pk, confirmed=data.validated_data["confirmed"], actor=request.user
        )
        return Response(RemediationActionSerializer(action, context={"request": request}).data)
