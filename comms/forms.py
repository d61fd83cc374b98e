"""Forms for the comms composer and the public subscription box."""

from __future__ import annotations

from django import forms

from config.validators import refuse_control_characters

from .models import PUBLIC_STATUS_CHOICES, Audience, Component, ComponentState, MessageTemplate


class ComposeForm(forms.Form):
    """An update being written: template, audience, status, text and component states."""

    template = forms.ModelChoiceField(
        queryset=MessageTemplate.objects.filter(active=True), required=False
    )
    # Set when editing a saved draft: saving or publishing changes that draft.
    draft = forms.IntegerField(required=False, widget=forms.HiddenInput)
    audience = forms.ChoiceField(choices=Audience.choices)
    status = forms.ChoiceField(choices=PUBLIC_STATUS_CHOICES)
    subject = forms.CharField(max_length=200, validators=[refuse_control_characters])
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "cols": 80}),
        validators=[refuse_control_characters],
    )

    def __init__(self, *args, components=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.components = list(components if components is not None else Component.objects.all())
        for comp in self.components:
            self.fields[f"component_{comp.pk}"] = forms.ChoiceField(
                label=comp.name,
                choices=[("", "(leave as is)"), *ComponentState.choices],
                required=False,
            )

    def component_fields(self):
        return [self[f"component_{c.pk}"] for c in self.components]

    def component_states(self) -> dict[str, str]:
        states = {}
        for comp in self.components:
            value = self.cleaned_data.get(f"component_{comp.pk}")
            if value:
                states[str(comp.pk)] = value
        return states


class SubscribeForm(forms.Form):
    email = forms.EmailField(max_length=254)
