"""Web forms for authoring postmortems, action items and reviews. Validation that needs the
database lives in the services; these forms check shape and turn input into service arguments."""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from config.kernel.forms import InstantField
from diagnostics.models import TargetDatabase

from .models import SECTIONS, ActionCategory, ActionStatus

SECTION_HELP = {
    "summary": "What happened, in a few sentences a newcomer understands.",
    "impact": "Who and what was affected, for how long, how badly.",
    "actions_taken": "What the responders did, in order, and what each step changed.",
    "root_cause": "Why it happened. Go past the trigger to the underlying cause.",
    "contributing_factors": "What made it more likely, bigger or longer.",
    "response_effectiveness": "How the response went against the times Quell measured.",
    "went_well": "What worked and should be kept.",
    "went_badly": "What slowed or hindered the response.",
    "lessons_learned": "What we now know that we did not before.",
    "data_impact": "Data lost, corrupted or restored; verification results.",
    "playbook_updates": "Changes to the playbook: diagnostics, decision tree, new SQL queries.",
}


class PostmortemForm(forms.Form):
    """The report's text. `version` is the version the author started from."""

    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    editor = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    title = forms.CharField(max_length=200)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, label in SECTIONS:
            self.fields[name] = forms.CharField(
                label=label,
                required=False,
                strip=False,
                help_text=SECTION_HELP.get(name, ""),
                widget=forms.Textarea(
                    attrs={
                        "rows": 6 if name in ("summary", "root_cause") else 4,
                        "data-markdown": "true",
                    }
                ),
            )

    @property
    def section_fields(self):
        return [self[name] for name, _ in SECTIONS]


def timeline_selection_from(data) -> dict[str, str]:
    """The chosen timeline entries from the form: tl_include=<id> and tl_note_<id>=annotation."""
    selection = {}
    for raw in data.getlist("tl_include"):
        if str(raw).isdigit():
            selection[str(int(raw))] = data.get(f"tl_note_{int(raw)}", "").replace("\r\n", "\n")
    return selection


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        full = obj.get_full_name()
        return f"{full} ({obj.get_username()})" if full else obj.get_username()


def _check_choices():
    from diagnostics.checks import registry
    from diagnostics.integrity.models import IntegrityCheck

    # Data integrity checks are defined per target; choosing one sets the target too.
    integrity = [
        (check.gate_key, f"Integrity: {check.name} on {check.target.name}")
        for check in IntegrityCheck.objects.select_related("target").order_by(
            "target__name", "name"
        )
    ]
    return (
        [("", "— none —")]
        + [(c.key, f"{c.title} ({c.key})") for c in sorted(registry.all(), key=lambda c: c.title)]
        + integrity
    )


class ActionItemForm(forms.Form):
    title = forms.CharField(max_length=200)
    category = forms.ChoiceField(choices=ActionCategory.choices)
    owner = UserChoiceField(queryset=get_user_model().objects.none(), required=False)
    due_date = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    tracker_url = forms.URLField(
        required=False, label="Tracker link", assume_scheme="https", max_length=500
    )
    description = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), strip=False
    )
    check_target = forms.ModelChoiceField(
        queryset=TargetDatabase.objects.none(),
        required=False,
        label="Verify on target",
        help_text="Optional: the item is done only when this check passes on this target.",
    )
    check_key = forms.ChoiceField(choices=(), required=False, label="Verification check")
    hold_minutes = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=7 * 24 * 60,
        label="Must hold for (minutes)",
    )

    def __init__(self, *args, with_status: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = (
            get_user_model().objects.filter(is_active=True).order_by("username")
        )
        self.fields["check_target"].queryset = TargetDatabase.objects.filter(enabled=True)
        self.fields["check_key"].choices = _check_choices()
        self.fields["hold_minutes"].help_text = (
            "How long the check must keep passing, on consecutive runs, before the item closes. "
            f"Empty: {settings.QUELL_ACTION_ITEM_HOLD_MINUTES} minutes, or one pass for a check "
            "that verifies a definition (an index now valid)."
        )
        if with_status:
            self.fields["status"] = forms.ChoiceField(choices=ActionStatus.choices)

    def clean(self):
        data = super().clean()
        key = data.get("check_key") or ""
        if key.startswith("integrity:") and not data.get("check_target"):
            return data  # the integrity check names its own target
        if bool(data.get("check_target")) != bool(data.get("check_key")):
            raise forms.ValidationError(
                "Choose both a target and a check for verification, or neither."
            )
        return data

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data["check_target"] = data.get("check_target")
        data["check_key"] = data.get("check_key") or ""
        data["tracker_url"] = data.get("tracker_url") or ""
        data["hold_minutes"] = data.get("hold_minutes")
        return data


class ReviewForm(forms.Form):
    starts_at = InstantField(
        label="Starts",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        help_text="In the organisation's time zone.",
    )
    duration_minutes = forms.IntegerField(label="Minutes", min_value=5, max_value=480)
    location = forms.CharField(
        required=False, max_length=500, help_text="Room or video link (defaults to the bridge)."
    )
    agenda = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    extra_attendees = forms.CharField(
        required=False,
        label="Also invite",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="E-mail addresses, one per line or comma-separated.",
    )

    def clean_starts_at(self):
        value = self.cleaned_data["starts_at"]
        if value <= timezone.now():
            raise forms.ValidationError("The review must start in the future.")
        return value

    def extra_list(self) -> list[str]:
        raw = self.cleaned_data.get("extra_attendees") or ""
        return [p.strip() for p in raw.replace(",", "\n").splitlines() if p.strip()]


class RescheduleForm(forms.Form):
    starts_at = ReviewForm.base_fields["starts_at"]
    duration_minutes = forms.IntegerField(
        label="Minutes", min_value=5, max_value=480, required=False
    )

    def clean_starts_at(self):
        return ReviewForm.clean_starts_at(self)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=2000, widget=forms.Textarea(attrs={"rows": 2}))
