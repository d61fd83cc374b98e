"""Input and output serializers for the comms API. Secrets are write-only."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.kernel.permissions import ADMIN, user_has_role
from config.validators import refuse_control_characters
from incidents.severity import Severity

from ..models import (
    PUBLIC_STATUS_CHOICES,
    Audience,
    Channel,
    ChannelAudience,
    ChannelKind,
    Component,
    ComponentState,
    Delivery,
    DeliveryState,
    MessageTemplate,
    StatusUpdate,
    Subscriber,
)


class TemplateOut(serializers.ModelSerializer):
    class Meta:
        model = MessageTemplate
        fields = [
            "id",
            "key",
            "name",
            "audience",
            "announces_status",
            "subject",
            "body",
            "is_default",
            "active",
            "position",
            "updated_at",
        ]


class TemplateIn(serializers.Serializer):
    key = serializers.SlugField(max_length=60)
    name = serializers.CharField(max_length=120)
    audience = serializers.ChoiceField(choices=Audience.choices)
    announces_status = serializers.ChoiceField(
        choices=PUBLIC_STATUS_CHOICES, required=False, allow_blank=True
    )
    subject = serializers.CharField(max_length=200, validators=[refuse_control_characters])
    body = serializers.CharField(validators=[refuse_control_characters])
    active = serializers.BooleanField(required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=32767)


class UpdateOut(serializers.ModelSerializer):
    template_key = serializers.CharField(
        source="template.key", default=None, allow_null=True, read_only=True
    )
    author = serializers.CharField(source="author_display", read_only=True)
    delivery_count = serializers.SerializerMethodField()
    delivered_count = serializers.SerializerMethodField()
    failed_count = serializers.SerializerMethodField()

    class Meta:
        model = StatusUpdate
        fields = [
            "id",
            "incident",
            "template",
            "template_key",
            "audience",
            "status",
            "subject",
            "body",
            "state",
            "component_states",
            "created_at",
            "published_at",
            "updated_at",
            "author",
            "delivery_count",
            "delivered_count",
            "failed_count",
        ]

    def _counts(self, obj) -> dict[str, int]:
        """The list views annotate the counts; a single update counts its deliveries once."""
        if getattr(obj, "delivery_count", None) is not None:
            return {
                "delivery_count": obj.delivery_count,
                "delivered_count": obj.delivered_count or 0,
                "failed_count": obj.failed_count or 0,
            }
        cached = getattr(obj, "_quell_delivery_counts", None)
        if cached is None:
            states = list(obj.deliveries.values_list("state", flat=True))
            cached = {
                "delivery_count": len(states),
                "delivered_count": states.count(DeliveryState.DELIVERED),
                "failed_count": states.count(DeliveryState.FAILED),
            }
            obj._quell_delivery_counts = cached
        return cached

    def get_delivery_count(self, obj) -> int:
        return self._counts(obj)["delivery_count"]

    def get_delivered_count(self, obj) -> int:
        return self._counts(obj)["delivered_count"]

    def get_failed_count(self, obj) -> int:
        return self._counts(obj)["failed_count"]


class PreviewIn(serializers.Serializer):
    template = serializers.IntegerField(required=False, allow_null=True)
    audience = serializers.ChoiceField(choices=Audience.choices, required=False)
    subject = serializers.CharField(
        required=False, allow_blank=True, max_length=200, validators=[refuse_control_characters]
    )
    body = serializers.CharField(
        required=False, allow_blank=True, validators=[refuse_control_characters]
    )
    status = serializers.ChoiceField(choices=PUBLIC_STATUS_CHOICES, required=False)

    def validate(self, attrs):
        if not attrs.get("template") and not attrs.get("audience"):
            raise serializers.ValidationError({"template": ["Choose a template or an audience."]})
        return attrs


class UpdateCreateIn(PreviewIn):
    component_states = serializers.DictField(
        child=serializers.ChoiceField(choices=ComponentState.choices), required=False
    )
    publish = serializers.BooleanField(required=False, default=False)


class UpdateEditIn(serializers.Serializer):
    subject = serializers.CharField(
        required=False, max_length=200, validators=[refuse_control_characters]
    )
    body = serializers.CharField(required=False, validators=[refuse_control_characters])
    status = serializers.ChoiceField(choices=PUBLIC_STATUS_CHOICES, required=False)
    component_states = serializers.DictField(
        child=serializers.ChoiceField(choices=ComponentState.choices), required=False
    )


class ChannelOut(serializers.ModelSerializer):
    # Never the URL or the key: only whether they are set.
    has_url = serializers.SerializerMethodField()
    has_signing_secret = serializers.SerializerMethodField()

    class Meta:
        model = Channel
        fields = [
            "id",
            "name",
            "kind",
            "audience",
            "severities",
            "recipients",
            "include_stakeholders",
            "receives_reminders",
            "enabled",
            "has_url",
            "has_signing_secret",
            "created_at",
            "updated_at",
        ]

    def get_has_url(self, obj) -> bool:
        return bool(obj.url)

    def get_has_signing_secret(self, obj) -> bool:
        return bool(obj.signing_secret)


class ChannelIn(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    kind = serializers.ChoiceField(choices=ChannelKind.choices)
    audience = serializers.ChoiceField(choices=ChannelAudience.choices, required=False)
    severities = serializers.ListField(
        child=serializers.ChoiceField(choices=Severity.choices), required=False
    )
    url = serializers.URLField(max_length=500, required=False, allow_blank=True, write_only=True)
    signing_secret = serializers.CharField(
        max_length=200, required=False, allow_blank=True, write_only=True
    )
    recipients = serializers.ListField(child=serializers.EmailField(), required=False)
    include_stakeholders = serializers.BooleanField(required=False)
    receives_reminders = serializers.BooleanField(required=False)
    enabled = serializers.BooleanField(required=False)


class DeliveryOut(serializers.ModelSerializer):
    channel_name = serializers.CharField(
        source="channel.name", default=None, allow_null=True, read_only=True
    )
    recipients = serializers.SerializerMethodField()
    response_excerpt = serializers.SerializerMethodField()

    class Meta:
        model = Delivery
        fields = [
            "id",
            "kind",
            "transport",
            "incident",
            "status_update",
            "channel",
            "channel_name",
            "destination",
            "recipients",
            "subject",
            "state",
            "attempts",
            "max_attempts",
            "next_attempt_at",
            "last_attempt_at",
            "response_code",
            "response_excerpt",
            "error",
            "delivered_at",
            "created_at",
        ]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_response_excerpt(self, obj) -> str | None:
        # What a receiver answered can be anything it chose to show (an internal page, a
        # token): admins only.
        request = self.context.get("request")
        if not (request and user_has_role(request.user, ADMIN)):
            return None
        return obj.response_excerpt

    def get_recipients(self, obj) -> list[str] | None:
        # Subscribers' addresses are personal data: admins only.
        request = self.context.get("request")
        if obj.subscriber_id and not (request and user_has_role(request.user, ADMIN)):
            return None
        return obj.recipients


class ComponentOut(serializers.ModelSerializer):
    targets = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = Component
        fields = [
            "id",
            "name",
            "description",
            "targets",
            "state",
            "position",
            "visible",
            "state_changed_at",
        ]


class ComponentIn(serializers.Serializer):
    name = serializers.CharField(max_length=100, validators=[refuse_control_characters])
    description = serializers.CharField(
        max_length=300, required=False, allow_blank=True, validators=[refuse_control_characters]
    )
    targets = serializers.ListField(child=serializers.IntegerField(), required=False)
    position = serializers.IntegerField(required=False, min_value=0, max_value=32767)
    visible = serializers.BooleanField(required=False)

    def validate_targets(self, value):
        from diagnostics.models import TargetDatabase

        found = set(TargetDatabase.objects.filter(pk__in=value).values_list("pk", flat=True))
        missing = [v for v in value if v not in found]
        if missing:
            raise serializers.ValidationError(f"Unknown targets: {missing}")
        return value


class ComponentStateIn(serializers.Serializer):
    state = serializers.ChoiceField(choices=ComponentState.choices)
    incident = serializers.IntegerField(required=False, allow_null=True)


class SubscriberOut(serializers.ModelSerializer):
    active = serializers.BooleanField(source="is_active", read_only=True)

    class Meta:
        model = Subscriber
        fields = [
            "id",
            "email",
            "created_at",
            "confirmation_sent_at",
            "confirmed_at",
            "unsubscribed_at",
            "active",
        ]
