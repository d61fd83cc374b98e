"""Detection state in the admin: read-only (signals write it, the incident lifecycle closes it)."""

from django.contrib import admin

from config.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline

from .models import Alert, AlertGroup


class AlertInline(ReadOnlyInline):
    model = Alert
    fields = ["fingerprint", "name", "status", "severity", "target", "last_seen_at", "deliveries"]
    readonly_fields = fields


@admin.register(AlertGroup)
class AlertGroupAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["label", "key", "kind", "incident", "target", "is_open", "opened_at"]
    list_filter = ["is_open", "kind"]
    search_fields = ["key", "label"]
    list_select_related = ["incident", "target"]
    inlines = [AlertInline]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "title",
        "source",
        "status",
        "severity",
        "target",
        "incident",
        "first_seen_at",
        "last_seen_at",
        "deliveries",
        "repeats",
    ]
    list_filter = ["status", "source", "severity", "kind"]
    search_fields = ["fingerprint", "name", "title", "target_hint"]
    list_select_related = ["incident", "target"]
