"""Admin for remediation records: read-only (they are the audit trail)."""

from __future__ import annotations

from django.contrib import admin

from .models import RemediationAction


@admin.register(RemediationAction)
class RemediationActionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "target",
        "incident",
        "kind",
        "status",
        "force",
        "executed_by",
        "previewed_at",
        "executed_at",
    )
    list_filter = ("status", "kind", "force", "target")
    search_fields = ("summary", "target__name")
    date_hierarchy = "previewed_at"
    list_select_related = ("target", "incident", "executed_by")

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        # Remediation happens through the preview and confirmation (panel or API), never here.
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
