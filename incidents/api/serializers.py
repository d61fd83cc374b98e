"""Input and output serializers, one pair per operation (HackSoft style).

Input serializers only validate the shape of a request; the rules (what may change when) live in
incidents.services. Output serializers read only what the selectors prefetch, so a page of
incidents costs the same number of queries whatever its size.
"""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.validators import refuse_control_characters
from incidents.models import (
    LIFECYCLE_TIMES,
    DetectionSource,
    EventKind,
    Kind,
    ResponderRole,
    Status,
)
from incidents.selectors import incident_missing_roles
from incidents.services import EDITABLE_FIELDS, REPORT_SOURCES, allowed_transitions
from incidents.severity import Severity, severity_definition

User = get_user_model()


# --- Output -----------------------------------------------------------------------------------


class UserRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)


class MissingRoleSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ResponderRole.choices, read_only=True)
    label = serializers.CharField(read_only=True)


class AssignmentOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    incident = serializers.IntegerField(source="incident_id", read_only=True)
    role = serializers.ChoiceField(choices=ResponderRole.choices, read_only=True)
    role_name = serializers.CharField(
        read_only=True, help_text="The role's own name when role is 'other'."
    )
    role_label = serializers.CharField(read_only=True)
    user = UserRefSerializer(read_only=True)
    assigned_at = serializers.DateTimeField(read_only=True)
    assigned_by = UserRefSerializer(read_only=True, allow_null=True)
    relieved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    relieved_by = UserRefSerializer(read_only=True, allow_null=True)
    is_active = serializers.BooleanField(read_only=True)


class CurrentAssignmentOutputSerializer(serializers.Serializer):
    """A current role holder as the incident list and detail show it."""

    id = serializers.IntegerField(read_only=True)
    role = serializers.ChoiceField(choices=ResponderRole.choices, read_only=True)
    role_name = serializers.CharField(read_only=True)
    role_label = serializers.CharField(read_only=True)
    user = UserRefSerializer(read_only=True)
    assigned_at = serializers.DateTimeField(read_only=True)


def _dt(value: datetime.datetime | None, tz) -> str | None:
    """What DRF's DateTimeField renders (ISO 8601 in the current zone, 'Z' for UTC), directly."""
    if value is None:
        return None
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _user_ref(user) -> dict | None:
    return None if user is None else {"id": user.pk, "username": user.get_username()}


def _holders(incident) -> list[dict]:
    """Current role holders as dicts, from the selectors' `holders` array or a prefetch."""
    holders = getattr(incident, "holders", None)
    if holders is not None:
        return holders
    return [
        {
            "id": a.pk,
            "role": a.role,
            "role_name": a.role_name,
            "user_id": a.user_id,
            "username": a.user.get_username(),
            "assigned_at": a.assigned_at,
        }
        for a in incident.active_assignments
    ]


def _holder_output(holder: dict, tz) -> dict:
    assigned_at = holder["assigned_at"]
    if isinstance(assigned_at, str):  # from the JSON array: PostgreSQL's ISO 8601 text
        assigned_at = datetime.datetime.fromisoformat(assigned_at)
    role = holder["role"]
    return {
        "id": holder["id"],
        "role": role,
        "role_name": holder["role_name"],
        "role_label": holder["role_name"] if role == ResponderRole.OTHER else _ROLE_LABELS[role],
        "user": {"id": holder["user_id"], "username": holder["username"]},
        "assigned_at": _dt(assigned_at, tz),
    }


_ROLE_LABELS = dict(ResponderRole.choices)


def _missing_roles(incident) -> list[dict]:
    return [
        {"role": role, "label": ResponderRole(role).label}
        for role in incident_missing_roles(incident)
    ]


class IncidentListOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    severity = serializers.ChoiceField(choices=Severity.choices, read_only=True)
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    is_open = serializers.BooleanField(read_only=True)
    kind = serializers.ChoiceField(choices=Kind.choices, read_only=True)
    detection_source = serializers.ChoiceField(choices=DetectionSource.choices, read_only=True)
    detected_by = serializers.CharField(read_only=True)
    channel_name = serializers.CharField(read_only=True)
    commander = serializers.SerializerMethodField()
    missing_roles = serializers.SerializerMethodField()
    detected_at = serializers.DateTimeField(read_only=True)
    declared_at = serializers.DateTimeField(read_only=True)
    acknowledged_at = serializers.DateTimeField(read_only=True, allow_null=True)
    resolved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    closed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(UserRefSerializer(allow_null=True))
    def get_commander(self, incident) -> dict | None:
        for holder in _holders(incident):
            if holder["role"] == ResponderRole.INCIDENT_COMMANDER:
                return {"id": holder["user_id"], "username": holder["username"]}
        return None

    @extend_schema_field(MissingRoleSerializer(many=True))
    def get_missing_roles(self, incident) -> list[dict]:
        return _missing_roles(incident)

    def to_representation(self, incident) -> dict:
        # The declared fields above document the shape (and are what DRF's generic rendering
        # produces: a test compares the two); building the dict directly is several times
        # cheaper per row, which is most of the cost of a page (see docs/benchmarks.md).
        tz = timezone.get_current_timezone()
        return {
            "id": incident.pk,
            "title": incident.title,
            "severity": incident.severity,
            "status": incident.status,
            "is_open": incident.is_open,
            "kind": incident.kind,
            "detection_source": incident.detection_source,
            "detected_by": incident.detected_by,
            "channel_name": incident.channel_name,
            "commander": self.get_commander(incident),
            "missing_roles": _missing_roles(incident),
            "detected_at": _dt(incident.detected_at, tz),
            "declared_at": _dt(incident.declared_at, tz),
            "acknowledged_at": _dt(incident.acknowledged_at, tz),
            "resolved_at": _dt(incident.resolved_at, tz),
            "closed_at": _dt(incident.closed_at, tz),
            "updated_at": _dt(incident.updated_at, tz),
        }


class DurationsSerializer(serializers.Serializer):
    """Seconds from detection to each milestone; null until it is reached."""

    to_acknowledge = serializers.FloatField(read_only=True, allow_null=True)
    to_identify = serializers.FloatField(read_only=True, allow_null=True)
    to_mitigate = serializers.FloatField(read_only=True, allow_null=True)
    to_resolve = serializers.FloatField(read_only=True, allow_null=True)


_MILESTONES = {
    "to_acknowledge": "acknowledged_at",
    "to_identify": "identified_at",
    "to_mitigate": "mitigated_at",
    "to_resolve": "resolved_at",
}


class IncidentDetailOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    title = serializers.CharField(read_only=True)
    slug = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)
    severity = serializers.ChoiceField(choices=Severity.choices, read_only=True)
    severity_definition = serializers.SerializerMethodField()
    status = serializers.ChoiceField(choices=Status.choices, read_only=True)
    is_open = serializers.BooleanField(read_only=True)
    allowed_transitions = serializers.SerializerMethodField()
    kind = serializers.ChoiceField(choices=Kind.choices, read_only=True)
    detection_source = serializers.ChoiceField(choices=DetectionSource.choices, read_only=True)
    detected_by = serializers.CharField(read_only=True)
    declared_by = UserRefSerializer(read_only=True, allow_null=True)
    # Initial assessment
    confirmed = serializers.BooleanField(read_only=True)
    reproducible = serializers.BooleanField(read_only=True, allow_null=True)
    scope = serializers.CharField(read_only=True)
    users_affected_percent = serializers.DecimalField(
        max_digits=5, decimal_places=2, read_only=True, allow_null=True
    )
    functionality_impacted = serializers.CharField(read_only=True)
    business_impact = serializers.CharField(read_only=True)
    # Channels
    channel_name = serializers.CharField(read_only=True)
    bridge_url = serializers.CharField(read_only=True)
    # Staffing
    roles = serializers.SerializerMethodField()
    missing_roles = serializers.SerializerMethodField()
    # Lifecycle
    detected_at = serializers.DateTimeField(read_only=True)
    declared_at = serializers.DateTimeField(read_only=True)
    acknowledged_at = serializers.DateTimeField(read_only=True, allow_null=True)
    identified_at = serializers.DateTimeField(read_only=True, allow_null=True)
    mitigated_at = serializers.DateTimeField(read_only=True, allow_null=True)
    resolved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    closed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    updated_at = serializers.DateTimeField(read_only=True)
    durations = serializers.SerializerMethodField()

    def get_severity_definition(self, incident) -> str:
        return severity_definition(incident.severity)

    @extend_schema_field(serializers.ListField(child=serializers.ChoiceField(Status.choices)))
    def get_allowed_transitions(self, incident) -> list[str]:
        return list(allowed_transitions(incident.status))

    @extend_schema_field(CurrentAssignmentOutputSerializer(many=True))
    def get_roles(self, incident) -> list[dict]:
        tz = timezone.get_current_timezone()
        return [_holder_output(h, tz) for h in _holders(incident)]

    @extend_schema_field(MissingRoleSerializer(many=True))
    def get_missing_roles(self, incident) -> list[dict]:
        return _missing_roles(incident)

    @extend_schema_field(DurationsSerializer)
    def get_durations(self, incident) -> dict:
        start = incident.detected_at
        result = {}
        for key, attr in _MILESTONES.items():
            at = getattr(incident, attr)
            result[key] = (at - start).total_seconds() if at and start else None
        return result

    def to_representation(self, incident) -> dict:
        # Direct, like the list's rows (a test holds it equal to DRF's generic rendering).
        tz = timezone.get_current_timezone()
        pct = incident.users_affected_percent
        body = {
            "id": incident.pk,
            "title": incident.title,
            "slug": incident.slug,
            "description": incident.description,
            "severity": incident.severity,
            "severity_definition": self.get_severity_definition(incident),
            "status": incident.status,
            "is_open": incident.is_open,
            "allowed_transitions": self.get_allowed_transitions(incident),
            "kind": incident.kind,
            "detection_source": incident.detection_source,
            "detected_by": incident.detected_by,
            "declared_by": _user_ref(incident.declared_by),
            "confirmed": incident.confirmed,
            "reproducible": incident.reproducible,
            "scope": incident.scope,
            "users_affected_percent": None if pct is None else f"{pct:.2f}",
            "functionality_impacted": incident.functionality_impacted,
            "business_impact": incident.business_impact,
            "channel_name": incident.channel_name,
            "bridge_url": incident.bridge_url,
            "roles": [_holder_output(h, tz) for h in _holders(incident)],
            "missing_roles": _missing_roles(incident),
        }
        for name in LIFECYCLE_TIMES:
            body[name] = _dt(getattr(incident, name), tz)
        body["durations"] = self.get_durations(incident)
        return body


class TimelineEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    incident = serializers.IntegerField(source="incident_id", read_only=True)
    occurred_at = serializers.DateTimeField(read_only=True)
    recorded_at = serializers.DateTimeField(read_only=True)
    kind = serializers.ChoiceField(choices=EventKind.choices, read_only=True)
    message = serializers.CharField(read_only=True)
    actor = UserRefSerializer(read_only=True, allow_null=True)
    actor_label = serializers.CharField(read_only=True)
    actor_display = serializers.CharField(read_only=True)
    data = serializers.JSONField(read_only=True)


class RolesOutputSerializer(serializers.Serializer):
    current = AssignmentOutputSerializer(many=True, read_only=True)
    history = AssignmentOutputSerializer(many=True, read_only=True)
    missing_roles = MissingRoleSerializer(many=True, read_only=True)
    required_roles = serializers.ListField(
        child=serializers.ChoiceField(ResponderRole.choices), read_only=True
    )


class ReportOutputSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=(("incident_created", "Incident created"), ("note_added", "Note added")),
        read_only=True,
        help_text="incident_created: a new incident was declared; note_added: the report was "
        "added to the given open incident's timeline.",
    )
    created = serializers.BooleanField(read_only=True)
    incident = IncidentDetailOutputSerializer(read_only=True)
    event = TimelineEventOutputSerializer(read_only=True)


# --- Input ------------------------------------------------------------------------------------


class _IncidentFieldsMixin(serializers.Serializer):
    """The editable details, shared by declare and update."""

    title = serializers.CharField(max_length=200, validators=[refuse_control_characters])
    kind = serializers.ChoiceField(choices=Kind.choices, required=False)
    description = serializers.CharField(
        required=False, allow_blank=True, validators=[refuse_control_characters]
    )
    detected_by = serializers.CharField(max_length=200, required=False, allow_blank=True)
    confirmed = serializers.BooleanField(required=False)
    reproducible = serializers.BooleanField(required=False, allow_null=True)
    scope = serializers.CharField(required=False, allow_blank=True)
    users_affected_percent = serializers.DecimalField(
        max_digits=5,
        decimal_places=2,
        min_value=0,
        max_value=100,
        required=False,
        allow_null=True,
    )
    functionality_impacted = serializers.CharField(required=False, allow_blank=True)
    business_impact = serializers.CharField(required=False, allow_blank=True)
    bridge_url = serializers.URLField(max_length=200, required=False, allow_blank=True)


class IncidentCreateInputSerializer(_IncidentFieldsMixin):
    severity = serializers.ChoiceField(
        choices=Severity.choices,
        help_text="; ".join(f"{s}: {severity_definition(s)}" for s in Severity.values),
    )
    detection_source = serializers.ChoiceField(
        choices=DetectionSource.choices, default=DetectionSource.API
    )
    detected_at = serializers.DateTimeField(
        required=False, help_text="When the problem was first noticed; defaults to now."
    )


class IncidentUpdateInputSerializer(_IncidentFieldsMixin):
    """Every field optional (PATCH); status, severity and times are refused by name."""

    title = serializers.CharField(
        max_length=200, required=False, validators=[refuse_control_characters]
    )

    def validate(self, attrs):
        refused = {}
        for name in self.initial_data if isinstance(self.initial_data, dict) else ():
            if name in EDITABLE_FIELDS:
                continue
            if name == "status":
                refused[name] = ["Not editable here: use the transition action."]
            elif name == "severity":
                refused[name] = ["Not editable here: use the severity action."]
            else:
                refused[name] = ["Unknown or read-only field."]
        if refused:
            raise serializers.ValidationError(refused)
        return attrs


class TransitionInputSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Status.choices, help_text="The status to move to.")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)
    expected_status = serializers.ChoiceField(
        choices=Status.choices,
        required=False,
        help_text="The status you saw. If the incident has moved on since, the request is "
        "refused with 409. Defaults to the status the server reads first.",
    )


class SeverityInputSerializer(serializers.Serializer):
    severity = serializers.ChoiceField(
        choices=Severity.choices,
        help_text="; ".join(f"{s}: {severity_definition(s)}" for s in Severity.values),
    )
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RoleAssignInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=ResponderRole.choices)
    role_name = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=80,
        help_text="Required when role is 'other' (for example 'Database specialist').",
    )
    user = serializers.CharField(help_text="The user's id or username.")

    def validate_user(self, value: str):
        value = value.strip()
        lookup = {"pk": int(value)} if value.isdigit() else {"username": value}
        user = User.objects.filter(is_active=True, **lookup).first()
        if user is None:
            raise serializers.ValidationError(f"No active user '{value}'.")
        return user

    def validate(self, attrs):
        if attrs["role"] == ResponderRole.OTHER and not attrs.get("role_name", "").strip():
            raise serializers.ValidationError(
                {"role_name": ["Name the role (for example 'Database specialist')."]}
            )
        return attrs


class NoteInputSerializer(serializers.Serializer):
    message = serializers.CharField(max_length=10000)
    occurred_at = serializers.DateTimeField(
        required=False, help_text="When it happened, if earlier than now (reconstructing)."
    )


class ReportInputSerializer(serializers.Serializer):
    source = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in REPORT_SOURCES],
        help_text="user_report (from a customer or user) or internal_report (developers, "
        "operations, data analysis).",
    )
    summary = serializers.CharField(
        max_length=2000, help_text="What was observed; the title of a new incident."
    )
    details = serializers.CharField(required=False, allow_blank=True, default="")
    reporter = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=200,
        help_text="Who reported it; defaults to you.",
    )
    incident = serializers.IntegerField(
        required=False,
        allow_null=True,
        help_text="An open incident to add the report to; without it a new incident is declared.",
    )
    severity = serializers.ChoiceField(
        choices=Severity.choices, default=Severity.SEV3, help_text="For a new incident."
    )
    kind = serializers.ChoiceField(choices=Kind.choices, default=Kind.OTHER)
