"""Admin for comms: templates, channels (secrets masked), deliveries with a retry action,
components, subscribers and the updates as sent (read-only once published)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from incidents.services import IncidentError

from . import rendering, services
from .models import (
    Channel,
    Component,
    ComponentStateChange,
    Delivery,
    DeliveryState,
    MessageTemplate,
    ReminderLog,
    StatusUpdate,
    Subscriber,
    UndeliveredInitialNotification,
)


class MessageTemplateForm(forms.ModelForm):
    class Meta:
        model = MessageTemplate
        fields = ["key", "name", "audience", "announces_status", "subject", "body", "active"]
        help_texts = {
            "body": "Django template language. Variables: "
            + ", ".join("{{ " + name + " }}" for name in rendering.VARIABLES),
        }

    def clean(self):
        data = super().clean()
        for name in ("subject", "body"):
            try:
                rendering.validate_template_source(data.get(name) or "")
            except rendering.TemplateError as exc:
                self.add_error(name, str(exc))
        return data


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    form = MessageTemplateForm
    list_display = ["name", "key", "audience", "announces_status", "is_default", "active"]
    list_filter = ["audience", "is_default", "active"]
    search_fields = ["name", "key", "body"]
    actions = ["reset_defaults"]

    def save_model(self, request, obj, form, change):
        obj.updated_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Restore the playbook text of default templates")
    def reset_defaults(self, request, queryset):
        count = services.templates_install_defaults(overwrite=True)
        self.message_user(request, f"{count} default template(s) restored.")


class ChannelForm(forms.ModelForm):
    """Secrets are never shown back: leave a secret field blank to keep the stored value."""

    url = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="Webhook URL. Leave blank to keep the current one.",
    )
    signing_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text="HMAC-SHA256 key (signed webhooks). Leave blank to keep the current one.",
    )

    class Meta:
        model = Channel
        fields = list(services.CHANNEL_FIELDS)  # what channel_save accepts, in its order

    def clean(self):
        data = super().clean()
        for secret in ("url", "signing_secret"):
            if not data.get(secret) and self.instance.pk:
                data[secret] = getattr(self.instance, secret)
        fields = {k: data.get(k) for k in services.CHANNEL_FIELDS if k in data}
        fields["severities"] = fields.get("severities") or []
        fields["recipients"] = fields.get("recipients") or []
        try:
            probe = Channel(pk=self.instance.pk, **fields)
            services.channel_validate(probe)
        except IncidentError as exc:
            raise ValidationError(
                {exc.field: str(exc)} if exc.field in self.fields else str(exc)
            ) from None
        return data


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "kind", "audience", "severities", "receives_reminders", "enabled"]
    list_filter = ["kind", "audience", "enabled"]
    search_fields = ["name"]
    actions = ["send_test"]

    @admin.action(description="Send a test message to the selected channels")
    def send_test(self, request, queryset):
        sent = 0
        for channel in queryset:
            try:
                services.channel_test_send(channel_id=channel.pk, actor=request.user)
                sent += 1
            except IncidentError as exc:
                self.message_user(request, f"{channel.name}: {exc}", messages.WARNING)
        self.message_user(request, f"{sent} test message(s) queued; see Deliveries.")


@admin.register(Delivery)
class DeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "kind",
        "destination",
        "incident",
        "state",
        "attempts",
        "response_code",
        "error_short",
        "created_at",
    ]
    list_filter = ["state", "kind", "transport"]
    search_fields = ["destination", "subject", "error"]
    date_hierarchy = "created_at"
    actions = ["retry_failed"]
    list_select_related = ["incident"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.display(description="error")
    def error_short(self, obj):
        return (obj.error or "")[:80]

    @admin.action(description="Retry the selected failed deliveries")
    def retry_failed(self, request, queryset):
        retried = 0
        for pk in queryset.filter(state=DeliveryState.FAILED).values_list("pk", flat=True):
            services.delivery_retry(delivery_id=pk, actor=request.user)
            retried += 1
        level = messages.SUCCESS if retried else messages.WARNING
        self.message_user(request, f"{retried} failed deliver(y/ies) queued again.", level)


@admin.register(StatusUpdate)
class StatusUpdateAdmin(admin.ModelAdmin):
    list_display = ["id", "incident", "audience", "status", "subject", "state", "published_at"]
    list_filter = ["audience", "state", "status"]
    search_fields = ["subject", "body"]
    list_select_related = ["incident"]

    def get_readonly_fields(self, request, obj=None):
        # What was sent stays as sent.
        if obj is not None and obj.is_published:
            return [f.name for f in self.model._meta.fields]
        return ["state", "published_at", "published_by", "published_by_label"]

    def has_delete_permission(self, request, obj=None):
        return obj is None or not obj.is_published


class ComponentStateChangeInline(admin.TabularInline):
    model = ComponentStateChange
    fields = ["changed_at", "state", "status_update"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["-changed_at"]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Component)
class ComponentAdmin(admin.ModelAdmin):
    inlines = [ComponentStateChangeInline]
    list_display = ["name", "state", "position", "visible", "state_changed_at"]
    list_editable = ["position", "visible"]
    filter_horizontal = ["targets"]
    readonly_fields = ["state_changed_at"]

    def save_model(self, request, obj, form, change):
        from django.db import transaction
        from django.utils import timezone

        from . import status_cache

        state_changed = "state" in form.changed_data
        if state_changed:
            obj.state_changed_at = timezone.now()
        super().save_model(request, obj, form, change)
        if state_changed:
            ComponentStateChange.objects.create(
                component=obj, state=obj.state, changed_at=obj.state_changed_at
            )
        transaction.on_commit(status_cache.invalidate)


@admin.register(Subscriber)
class SubscriberAdmin(admin.ModelAdmin):
    list_display = ["email", "created_at", "confirmed_at", "unsubscribed_at"]
    search_fields = ["email"]
    list_filter = [("confirmed_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["created_at", "confirmation_sent_at", "confirmed_at", "unsubscribed_at"]


@admin.register(ReminderLog)
class ReminderLogAdmin(admin.ModelAdmin):
    list_display = ["incident", "due_at", "sent_at", "reminded_user"]
    list_select_related = ["incident", "reminded_user"]

    def has_add_permission(self, request):
        return False


@admin.register(UndeliveredInitialNotification)
class UndeliveredInitialNotificationAdmin(admin.ModelAdmin):
    list_display = ["incident", "recorded_at", "reason"]
    list_select_related = ["incident"]
    readonly_fields = ["incident", "reason", "recorded_at"]

    def has_add_permission(self, request):
        return False
