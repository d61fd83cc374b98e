"""Input and output serializers for the postmortems API."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework import serializers

from diagnostics.models import TargetDatabase

from .. import selectors
from ..markdown import render_markdown
from ..models import SECTIONS, ActionCategory, ActionItem, ActionStatus, Postmortem, Review
from ..services.action_items import MAX_HOLD_MINUTES


def absolute(serializer, path: str) -> str:
    """An absolute URL, as every `url` in the API is: from the request when there is one, else
    from QUELL_BASE_URL (serializers used outside a request, such as in services' answers)."""
    request = serializer.context.get("request")
    if request is not None:
        return request.build_absolute_uri(path)
    return settings.QUELL_BASE_URL.rstrip("/") + path


HOLD_HELP = (
    "Minutes the verification check must keep passing, on consecutive runs, before the item "
    "closes. null: QUELL_ACTION_ITEM_HOLD_MINUTES (10), or one pass for a check that verifies "
    "a definition."
)


def _username(user):
    return user.get_username() if user else None


class SpanSerializer(serializers.Serializer):
    label = serializers.CharField()
    start = serializers.DateTimeField(allow_null=True)
    end = serializers.DateTimeField(allow_null=True)
    seconds = serializers.SerializerMethodField()

    def get_seconds(self, span) -> int | None:
        return int(span.duration.total_seconds()) if span.duration is not None else None


class ReviewOutputSerializer(serializers.ModelSerializer):
    postmortem = serializers.IntegerField(source="postmortem_id")
    incident = serializers.IntegerField(source="postmortem.incident_id")
    ends_at = serializers.DateTimeField()
    organizer = serializers.SerializerMethodField()
    ics_url = serializers.SerializerMethodField()
    review_due_at = serializers.DateTimeField(source="postmortem.review_due_at")

    class Meta:
        model = Review
        fields = [
            "id",
            "postmortem",
            "incident",
            "status",
            "starts_at",
            "ends_at",
            "duration_minutes",
            "location",
            "agenda",
            "attendees",
            "left_out",
            "uid",
            "sequence",
            "organizer",
            "reminder_sent_at",
            "cancelled_reason",
            "review_due_at",
            "ics_url",
            "created_at",
            "updated_at",
        ]

    def get_organizer(self, review) -> str | None:
        return _username(review.organizer)

    def get_ics_url(self, review) -> str:
        return absolute(self, f"/api/v1/reviews/{review.pk}/ics/")


class ActionItemOutputSerializer(serializers.ModelSerializer):
    postmortem = serializers.IntegerField(source="postmortem_id")
    incident = serializers.IntegerField(source="postmortem.incident_id")
    owner = serializers.SerializerMethodField()
    owner_id = serializers.IntegerField(allow_null=True)
    check_target = serializers.IntegerField(source="check_target_id", allow_null=True)
    overdue = serializers.SerializerMethodField()
    verification_run = serializers.IntegerField(source="verification_run_id", allow_null=True)
    verification_integrity_run = serializers.IntegerField(
        source="verification_integrity_run_id", allow_null=True
    )

    class Meta:
        model = ActionItem
        fields = [
            "id",
            "postmortem",
            "incident",
            "title",
            "description",
            "category",
            "owner",
            "owner_id",
            "due_date",
            "status",
            "overdue",
            "tracker_url",
            "check_target",
            "check_key",
            "verification_run",
            "verification_integrity_run",
            "verification_status",
            "verification_summary",
            "verified_at",
            "hold_minutes",
            "passing_since",
            "completed_at",
            "created_at",
            "updated_at",
        ]

    def get_owner(self, item) -> str | None:
        return _username(item.owner)

    def get_overdue(self, item) -> bool:
        return item.is_overdue(timezone.localdate())


class PostmortemListOutputSerializer(serializers.ModelSerializer):
    incident_title = serializers.CharField(source="incident.title")
    severity = serializers.CharField(source="incident.severity")
    review_late = serializers.SerializerMethodField()
    url = serializers.SerializerMethodField()

    class Meta:
        model = Postmortem
        fields = [
            "id",
            "incident",
            "incident_title",
            "severity",
            "title",
            "status",
            "version",
            "review_due_at",
            "review_late",
            "created_at",
            "updated_at",
            "published_at",
            "url",
        ]

    def get_review_late(self, postmortem) -> bool:
        return selectors.review_is_late(postmortem)

    def get_url(self, postmortem) -> str:
        return absolute(self, f"/postmortems/{postmortem.pk}/")


class PostmortemDetailOutputSerializer(PostmortemListOutputSerializer):
    sections = serializers.SerializerMethodField()
    sections_html = serializers.SerializerMethodField()
    timeline = serializers.SerializerMethodField()
    response_times = serializers.SerializerMethodField()
    review = serializers.SerializerMethodField()
    action_items = serializers.SerializerMethodField()
    updated_by = serializers.SerializerMethodField()

    class Meta(PostmortemListOutputSerializer.Meta):
        fields = [
            *PostmortemListOutputSerializer.Meta.fields,
            "sections",
            "sections_html",
            "timeline_selection",
            "timeline",
            "response_times",
            "review",
            "action_items",
            "updated_by",
            "waived_reason",
        ]

    def get_sections(self, postmortem) -> dict[str, str]:
        return {name: getattr(postmortem, name) for name, _ in SECTIONS}

    def get_sections_html(self, postmortem) -> dict[str, str]:
        return {name: str(render_markdown(getattr(postmortem, name))) for name, _ in SECTIONS}

    def get_timeline(self, postmortem) -> list[dict]:
        return [
            {
                "event_id": entry["event"].pk,
                "occurred_at": entry["event"].occurred_at,
                "kind": entry["event"].kind,
                "message": entry["event"].message,
                "annotation": entry["note"],
            }
            for entry in selectors.selected_timeline(postmortem)
        ]

    def get_response_times(self, postmortem) -> dict:
        times = selectors.response_times(postmortem.incident)
        return {key: SpanSerializer(spans, many=True).data for key, spans in times.items()}

    def get_review(self, postmortem) -> dict | None:
        review = selectors.current_review(postmortem)
        return ReviewOutputSerializer(review).data if review else None

    def get_action_items(self, postmortem) -> list[dict]:
        items = selectors.action_item_list(filters={"postmortem": postmortem})
        return ActionItemOutputSerializer(items, many=True).data

    def get_updated_by(self, postmortem) -> str | None:
        return _username(postmortem.updated_by)


class PostmortemCreateInputSerializer(serializers.Serializer):
    incident = serializers.IntegerField()


class PostmortemUpdateInputSerializer(serializers.Serializer):
    version = serializers.IntegerField(
        min_value=1, help_text="The version you read; a concurrent change gives 409."
    )
    title = serializers.CharField(max_length=200, required=False)
    timeline_selection = serializers.DictField(
        child=serializers.CharField(allow_blank=True, max_length=2000), required=False
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in SECTIONS:
            self.fields[name] = serializers.CharField(
                required=False, allow_blank=True, trim_whitespace=False, help_text=label
            )


class PublishInputSerializer(serializers.Serializer):
    override = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Publish although the review has not been held or a core section is empty.",
    )


class ReasonInputSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class ActionItemCreateInputSerializer(serializers.Serializer):
    postmortem = serializers.IntegerField()
    title = serializers.CharField(max_length=200)
    category = serializers.ChoiceField(choices=ActionCategory.choices)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(is_active=True), required=False, allow_null=True
    )
    due_date = serializers.DateField(required=False, allow_null=True)
    tracker_url = serializers.URLField(required=False, allow_blank=True, default="")
    check_target = serializers.PrimaryKeyRelatedField(
        queryset=TargetDatabase.objects.all(), required=False, allow_null=True
    )
    check_key = serializers.CharField(required=False, allow_blank=True, default="")
    hold_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=0,
        max_value=MAX_HOLD_MINUTES,
        help_text=HOLD_HELP,
    )


class ActionItemUpdateInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200, required=False)
    category = serializers.ChoiceField(choices=ActionCategory.choices, required=False)
    description = serializers.CharField(required=False, allow_blank=True)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.filter(is_active=True), required=False, allow_null=True
    )
    due_date = serializers.DateField(required=False, allow_null=True)
    status = serializers.ChoiceField(choices=ActionStatus.choices, required=False)
    tracker_url = serializers.URLField(required=False, allow_blank=True)
    check_target = serializers.PrimaryKeyRelatedField(
        queryset=TargetDatabase.objects.all(), required=False, allow_null=True
    )
    check_key = serializers.CharField(required=False, allow_blank=True)
    hold_minutes = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=0,
        max_value=MAX_HOLD_MINUTES,
        help_text=HOLD_HELP,
    )


class ReviewScheduleInputSerializer(serializers.Serializer):
    starts_at = serializers.DateTimeField(
        required=False, help_text="Omit to take the proposed slot."
    )
    duration_minutes = serializers.IntegerField(min_value=5, max_value=480, required=False)
    location = serializers.CharField(required=False, allow_blank=True, default="")
    agenda = serializers.CharField(required=False, allow_blank=True, default="")
    extra_attendees = serializers.ListField(
        child=serializers.CharField(max_length=320), required=False, default=list
    )


class ReviewRescheduleInputSerializer(serializers.Serializer):
    starts_at = serializers.DateTimeField()
    duration_minutes = serializers.IntegerField(min_value=5, max_value=480, required=False)
    location = serializers.CharField(required=False, allow_blank=True)
    agenda = serializers.CharField(required=False, allow_blank=True)


class ReviewCancelInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, default="")


class ReviewProposalOutputSerializer(serializers.Serializer):
    proposed_start = serializers.DateTimeField()
    duration_minutes = serializers.IntegerField()
    review_due_at = serializers.DateTimeField(allow_null=True)
    invitees = serializers.ListField(child=serializers.DictField())
