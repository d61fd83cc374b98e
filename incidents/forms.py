"""Web forms for the responder pages. They validate input and hand it to `incidents.services`;
the services stay the single place where the rules live (their IncidentError messages are put
back on the form field they name)."""

from __future__ import annotations

import datetime

from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from config.kernel.forms import InstantField
from config.kernel.permissions import ADMIN, COMMANDER, RESPONDER
from config.validators import refuse_control_characters

from .models import ASSESSMENT_FIELDS, DetectionSource, EventKind, Kind, ResponderRole, Status
from .severity import SEVERITY_DEFINITIONS, Severity

NULL_BOOLEAN_CHOICES = [("", "Unknown"), ("true", "Yes"), ("false", "No")]


def severity_options() -> list[dict]:
    """Severity levels with the playbook's definition, for rendering beside the choice."""
    return [
        {"value": value, "label": label, "definition": SEVERITY_DEFINITIONS[Severity(value)]}
        for value, label in Severity.choices
    ]


def _null_boolean(value):
    return {"true": True, "false": False}.get(value)


class FilterDateField(forms.DateField):
    """A day to filter by: a whole day either side of it must exist as an aware datetime.

    A filter adds a day ("until" includes the whole day) and converts to UTC: 9999-12-31 plus a
    day, or 0001-01-01 moved west, is beyond Python's datetime range (an OverflowError, a 500).
    """

    FIRST = datetime.date(1, 1, 2)
    LAST = datetime.date(9999, 12, 30)

    def validate(self, value):
        super().validate(value)
        if value and not (self.FIRST <= value <= self.LAST):
            raise forms.ValidationError(
                f"Give a date between {self.FIRST.isoformat()} and {self.LAST.isoformat()}."
            )


class _AssessmentMixin(forms.Form):
    confirmed = forms.BooleanField(
        required=False,
        label="Confirmed",
        help_text="Verified by running diagnostic queries.",
    )
    reproducible = forms.TypedChoiceField(
        required=False,
        choices=NULL_BOOLEAN_CHOICES,
        coerce=_null_boolean,
        empty_value=None,
        label="Reproducible",
    )
    scope = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Scope",
        help_text="Specific queries or tables involved.",
    )
    users_affected_percent = forms.DecimalField(
        required=False,
        min_value=0,
        max_value=100,
        max_digits=5,
        decimal_places=2,
        label="Users affected (%)",
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    functionality_impacted = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Functionality impacted"
    )
    business_impact = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Business impact"
    )


class DeclareForm(_AssessmentMixin):
    title = forms.CharField(
        max_length=200,
        label="Title",
        validators=[refuse_control_characters],
        help_text="What is wrong, in a few words (for example: Checkout queries time out).",
        widget=forms.TextInput(attrs={"autofocus": True, "autocomplete": "off"}),
    )
    severity = forms.ChoiceField(
        choices=Severity.choices, widget=forms.RadioSelect, label="Severity"
    )
    kind = forms.ChoiceField(choices=Kind.choices, initial=Kind.PERFORMANCE, label="Kind")
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Description",
        validators=[refuse_control_characters],
    )
    detection_source = forms.ChoiceField(
        choices=[
            (DetectionSource.INTERNAL_REPORT, DetectionSource.INTERNAL_REPORT.label),
            (DetectionSource.USER_REPORT, DetectionSource.USER_REPORT.label),
            (DetectionSource.MONITOR, DetectionSource.MONITOR.label),
            (DetectionSource.ALERT, DetectionSource.ALERT.label),
        ],
        initial=DetectionSource.INTERNAL_REPORT,
        label="Detection source",
    )
    detected_by = forms.CharField(
        max_length=200,
        required=False,
        label="Detected by",
        help_text="Person or system that noticed it. Empty: you.",
    )
    detected_at = InstantField(
        required=False,
        label="Detected at",
        help_text="When the problem was first noticed (your local time). Empty: now.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"],
    )

    field_order = [
        "title",
        "severity",
        "kind",
        "description",
        "affected_targets",
        "detection_source",
        "detected_by",
        "detected_at",
        *ASSESSMENT_FIELDS,
    ]

    # What a link may prefill (?title=...&targets=3,5): from a monitor, an alert or a target
    # whose latest run is critical. Anything else in the address is ignored.
    PREFILL = ("title", "severity", "kind", "description", "detection_source", "detected_by")

    def __init__(self, *args, target_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        if target_choices:
            # Only when an app offers databases (incidents.affected); else no field at all.
            self.fields["affected_targets"] = forms.TypedMultipleChoiceField(
                choices=list(target_choices),
                coerce=int,
                required=False,
                label="Affected databases",
                help_text=(
                    "Each chosen database gets a diagnostics run at once, so the state at "
                    "detection is on record. Ctrl- or Cmd-click to choose several."
                ),
                widget=forms.SelectMultiple(attrs={"size": max(3, min(8, len(target_choices)))}),
            )
            self.order_fields(self.field_order)

    @classmethod
    def initial_from(cls, query, *, target_choices=()) -> dict:
        """Initial values from a link's query string; unknown databases are left out."""
        initial = {k: query.get(k) for k in cls.PREFILL if query.get(k)}
        known = {pk for pk, _ in target_choices}
        wanted = []
        for value in query.getlist("targets"):
            for part in value.split(","):
                part = part.strip()
                if part.isdigit() and int(part) in known and int(part) not in wanted:
                    wanted.append(int(part))
        if wanted:
            initial["affected_targets"] = wanted
        return initial

    def clean_detected_at(self):
        value = self.cleaned_data.get("detected_at")
        if value and value > timezone.now() + datetime.timedelta(minutes=5):
            raise forms.ValidationError("Detection time cannot be in the future.")
        return value

    def service_kwargs(self) -> dict:
        """Keyword arguments for incidents.services.incident_declare (the databases apart)."""
        data = dict(self.cleaned_data)
        data.pop("affected_targets", None)
        return data


class AssessmentForm(_AssessmentMixin):
    """Summary and assessment of an existing incident (incidents.services.incident_update)."""

    title = forms.CharField(max_length=200, label="Title", validators=[refuse_control_characters])
    kind = forms.ChoiceField(choices=Kind.choices, label="Kind")
    description = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        label="Description",
        validators=[refuse_control_characters],
    )
    detected_by = forms.CharField(max_length=200, required=False, label="Detected by")
    bridge_url = forms.URLField(required=False, label="Video bridge", assume_scheme="https")

    field_order = ["title", "kind", "description", "detected_by", "bridge_url", *ASSESSMENT_FIELDS]

    @classmethod
    def initial_for(cls, incident) -> dict:
        """The form's initial values from the incident."""
        initial = {name: getattr(incident, name) for name in cls.base_fields}
        reproducible = incident.reproducible
        initial["reproducible"] = "" if reproducible is None else str(reproducible).lower()
        return initial

    def changes(self, incident) -> dict:
        """Only what differs from the incident, so the timeline records real changes."""
        out = {}
        for name, value in self.cleaned_data.items():
            if getattr(incident, name) != value:
                out[name] = value
        return out


class TransitionForm(forms.Form):
    """Move the incident to one of the statuses its lifecycle allows from where it is now."""

    to_status = forms.ChoiceField(choices=Status.choices, label="New status")
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason",
        help_text="Recorded on the timeline.",
    )
    # The status the user saw; a transition committed meanwhile turns this into a conflict.
    expected_status = forms.ChoiceField(choices=Status.choices, widget=forms.HiddenInput)

    def __init__(self, *args, allowed: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_status"].choices = [(s, Status(s).label) for s in allowed]


class SeverityForm(forms.Form):
    severity = forms.ChoiceField(
        choices=Severity.choices, widget=forms.RadioSelect, label="Severity"
    )
    reason = forms.CharField(
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Reason",
    )


def assignable_users():
    """Active users who may respond: responder group or above, or superusers."""
    user_model = get_user_model()
    return (
        user_model.objects.filter(is_active=True)
        .filter(Q(is_superuser=True) | Q(groups__name__in=(RESPONDER, COMMANDER, ADMIN)))
        .distinct()
        .order_by("username")
    )


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


class AssignRoleForm(forms.Form):
    role = forms.ChoiceField(choices=ResponderRole.choices, label="Role")
    role_name = forms.CharField(
        required=False,
        max_length=80,
        label="Role name",
        help_text="Only for Other (for example: Database specialist).",
    )
    user = UserChoiceField(queryset=None, label="Person", empty_label="Choose a person")

    def __init__(self, *args, roles=None, **kwargs):
        """`roles`: the role values to offer (those the user may grant); all when None. A
        posted role outside the offer still reaches the service, which refuses it with 403."""
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = assignable_users()
        if roles is not None:
            self.fields["role"].choices = [c for c in ResponderRole.choices if c[0] in roles]

    def clean(self):
        data = super().clean()
        if data.get("role") == ResponderRole.OTHER and not (data.get("role_name") or "").strip():
            self.add_error("role_name", "Name the role (for example 'Database specialist').")
        return data


class NoteForm(forms.Form):
    message = forms.CharField(
        max_length=10000,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Add a note to the timeline",
    )


class TimelineFilterForm(forms.Form):
    """Which kinds of timeline event to show ("event", not "kind": the details form, which
    posts together with this filter, has a "kind" of its own)."""

    event = forms.MultipleChoiceField(
        required=False, choices=EventKind.choices, widget=forms.CheckboxSelectMultiple
    )


OPEN = "open"
STATUS_FILTER_CHOICES = [("", "Any status"), (OPEN, "Open (not resolved)"), *Status.choices]


class IncidentListForm(forms.Form):
    """The base form of the web list's filters (incidents.filters.IncidentListFilter adds the
    fields); every field optional, invalid values are reported and ignored."""

    def clean(self):
        data = super().clean()
        after, before = data.get("declared_after"), data.get("declared_before")
        if after and before and after > before:
            self.add_error("declared_before", "The end date is before the start date.")
        return data
