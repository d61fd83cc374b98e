"""Input and output serializers. Credentials are write-only: no output serializer has them."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.reverse import reverse

from incidents.models import DetectionSource, Kind
from incidents.severity import Severity

from .. import query_texts
from ..models import (
    CheckResult,
    DiagnosticRun,
    Environment,
    IncidentTarget,
    ResultStatus,
    SSLMode,
    TargetDatabase,
)
from ..target_services import TARGET_FIELDS


class TargetOutputSerializer(serializers.ModelSerializer):
    password_set = serializers.BooleanField(source="has_password", read_only=True)
    dsn_set = serializers.BooleanField(source="has_dsn", read_only=True)
    url = serializers.SerializerMethodField()

    class Meta:
        model = TargetDatabase
        fields = [
            "id",
            "url",
            *TARGET_FIELDS,  # what the services accept, in the same order
            "password_set",
            "dsn_set",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField())
    def get_url(self, obj) -> str:
        return reverse(
            "diagnostics-target-detail", kwargs={"pk": obj.pk}, request=self.context.get("request")
        )


class TargetInputSerializer(serializers.Serializer):
    """Create (all required fields) or change (partial) a target. password and dsn are
    write-only: omit to keep the stored value, send "" to clear it."""

    name = serializers.CharField(max_length=100)
    environment = serializers.ChoiceField(choices=Environment.choices, default="production")
    host = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")
    port = serializers.IntegerField(min_value=1, max_value=65535, default=5432)
    database = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    user = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    password = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        style={"input_type": "password"},
    )
    dsn = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text="A whole libpq connection string or URI instead of separate settings.",
    )
    sslmode = serializers.ChoiceField(choices=SSLMode.choices, default="prefer")
    options = serializers.CharField(max_length=500, required=False, allow_blank=True, default="")
    tags = serializers.ListField(
        child=serializers.CharField(max_length=50), required=False, default=list
    )
    aliases = serializers.ListField(
        child=serializers.CharField(max_length=255, allow_blank=True),
        required=False,
        default=list,
        help_text="Other names alerts use for it, such as the exporter's instance (shop-db:9187).",
    )
    enabled = serializers.BooleanField(default=True)
    remediation_allowed = serializers.BooleanField(default=False)
    thresholds = serializers.DictField(child=serializers.DictField(), required=False, default=dict)


class TestConnectionOutputSerializer(serializers.Serializer):
    reachable = serializers.BooleanField()
    latency_ms = serializers.FloatField(allow_null=True, required=False)
    connect_ms = serializers.FloatField(allow_null=True, required=False)
    server_version = serializers.CharField(allow_null=True, required=False)
    server_version_num = serializers.IntegerField(allow_null=True, required=False)
    in_recovery = serializers.BooleanField(allow_null=True, required=False)
    platform = serializers.CharField(required=False, allow_blank=True)
    current_user = serializers.CharField(required=False)
    missing = serializers.ListField(child=serializers.DictField(), required=False)
    # {"what": "superuser", "why", "fix"}: the role works but has more power than Quell needs.
    warnings = serializers.ListField(child=serializers.DictField(), required=False)
    error = serializers.CharField(required=False, allow_blank=True)


class CheckResultSerializer(serializers.ModelSerializer):
    class Meta:
        model = CheckResult
        fields = ["id", *CheckResult.SHOWN_FIELDS]
        read_only_fields = fields

    def to_representation(self, instance):
        data = super().to_representation(instance)
        request = self.context.get("request")
        data["findings"] = query_texts.for_user(data["findings"], getattr(request, "user", None))
        return data


class CheckHistorySerializer(CheckResultSerializer):
    run_id = serializers.IntegerField(read_only=True)
    run_queued_at = serializers.DateTimeField(source="run.queued_at", read_only=True)
    run_finished_at = serializers.DateTimeField(source="run.finished_at", read_only=True)

    class Meta(CheckResultSerializer.Meta):
        fields = [*CheckResultSerializer.Meta.fields, "run_id", "run_queued_at", "run_finished_at"]
        read_only_fields = fields


class RunSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField()
    web_url = serializers.SerializerMethodField()
    target_name = serializers.CharField(source="target.name", read_only=True)
    requested_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    # Empty while the run is queued or running: null then, never a value outside the enum.
    worst_status = serializers.SerializerMethodField()
    suite_label = serializers.CharField(read_only=True)
    duration_ms = serializers.IntegerField(read_only=True, allow_null=True)

    class Meta:
        model = DiagnosticRun
        fields = [
            "id",
            "url",
            "web_url",
            "target",
            "target_name",
            "incident",
            "trigger",
            "requested_by",
            "suite",
            "suite_label",
            "status",
            "worst_status",
            "queued_at",
            "started_at",
            "finished_at",
            "deadline",
            "duration_ms",
            "requeues",
            "celery_task_id",
            "error",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.ChoiceField(choices=ResultStatus.choices, allow_null=True))
    def get_worst_status(self, obj):
        return obj.worst_status or None

    @extend_schema_field(serializers.URLField())
    def get_url(self, obj) -> str:
        return reverse(
            "diagnostics-run-detail", kwargs={"pk": obj.pk}, request=self.context.get("request")
        )

    @extend_schema_field(serializers.URLField())
    def get_web_url(self, obj) -> str:
        return reverse(
            "diagnostics:run-detail", kwargs={"run_id": obj.pk}, request=self.context.get("request")
        )


class RunFanOutSerializer(serializers.Serializer):
    """A fan-out over several targets: one run each."""

    runs = RunSerializer(many=True)


class RunDetailSerializer(RunSerializer):
    results = CheckResultSerializer(many=True, read_only=True)

    class Meta(RunSerializer.Meta):
        fields = [*RunSerializer.Meta.fields, "results"]
        read_only_fields = fields


class SuiteInputSerializer(serializers.Serializer):
    """Which checks: chosen keys, a family, or (neither) every check."""

    keys = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    family = serializers.CharField(required=False, allow_blank=True, default="")

    def suite(self) -> dict:
        data = self.validated_data
        return {k: v for k, v in (("keys", data["keys"]), ("family", data["family"])) if v}


class TargetRunInputSerializer(SuiteInputSerializer):
    incident = serializers.IntegerField(required=False, allow_null=True, default=None)


class RunCreateInputSerializer(SuiteInputSerializer):
    """One target (`target`), or a fan-out over `targets`, an `environment` and/or a `tag`."""

    target = serializers.IntegerField(required=False, allow_null=True, default=None)
    targets = serializers.ListField(child=serializers.IntegerField(), required=False, default=list)
    environment = serializers.ChoiceField(
        choices=Environment.choices, required=False, allow_blank=True, default=""
    )
    tag = serializers.CharField(required=False, allow_blank=True, default="")
    incident = serializers.IntegerField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        single = attrs.get("target") is not None
        many = bool(attrs["targets"] or attrs["environment"] or attrs["tag"])
        if single and many:
            raise serializers.ValidationError(
                {"target": ["Give one target, or a selection (targets, environment, tag)."]}
            )
        if not single and not many:
            raise serializers.ValidationError(
                {"target": ["Choose a target, or targets / environment / tag to fan out."]}
            )
        return attrs


class RunsAcceptedSerializer(serializers.Serializer):
    runs = RunSerializer(many=True)


class IncidentTargetSerializer(serializers.ModelSerializer):
    target = TargetOutputSerializer(read_only=True)
    added_by = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = IncidentTarget
        fields = ["id", "incident", "target", "added_at", "added_by"]
        read_only_fields = fields


class IncidentTargetInputSerializer(serializers.Serializer):
    target = serializers.IntegerField()
    start_run = serializers.BooleanField(
        default=True, help_text="Start a run at once (on an open incident)."
    )


class IncidentTargetAddedSerializer(serializers.Serializer):
    link = IncidentTargetSerializer()
    run = RunSerializer(allow_null=True)


class DeclareInputSerializer(serializers.Serializer):
    """Declare an incident and its affected targets at once; each target gets a run."""

    title = serializers.CharField(max_length=200)
    severity = serializers.ChoiceField(choices=Severity.choices)
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.OTHER)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    detection_source = serializers.ChoiceField(
        choices=DetectionSource.choices, default=DetectionSource.INTERNAL_REPORT
    )
    detected_by = serializers.CharField(required=False, allow_blank=True, default="")
    affected_targets = serializers.ListField(child=serializers.IntegerField(), min_length=1)


class DeclareOutputSerializer(serializers.Serializer):
    incident = serializers.IntegerField()
    incident_title = serializers.CharField()
    runs = RunSerializer(many=True)


class CheckInfoSerializer(serializers.Serializer):
    key = serializers.CharField()
    title = serializers.CharField()
    family = serializers.CharField()
    description = serializers.CharField(allow_blank=True)
    min_server_version = serializers.IntegerField(allow_null=True)
    default_thresholds = serializers.DictField()
