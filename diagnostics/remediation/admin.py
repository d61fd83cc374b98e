"""Admin for remediation records (read-only: they are the audit trail) and runbooks
(definitions are edited here, steps inline; started runbooks are read)."""

from __future__ import annotations

from django.contrib import admin

from .models import (
    IncidentRunbook,
    IncidentRunbookStep,
    RemediationAction,
    Runbook,
    RunbookStep,
)


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


class RunbookStepInline(admin.TabularInline):
    model = RunbookStep
    extra = 1
    fields = ("position", "title", "detail", "action")


@admin.register(Runbook)
class RunbookAdmin(admin.ModelAdmin):
    list_display = ("title", "key", "position", "active", "step_count")
    list_editable = ("position", "active")
    prepopulated_fields = {"key": ("title",)}
    search_fields = ("title", "key")
    inlines = [RunbookStepInline]

    @admin.display(description="Steps")
    def step_count(self, obj) -> int:
        return obj.steps.count()


class IncidentRunbookStepInline(admin.TabularInline):
    model = IncidentRunbookStep
    extra = 0
    fields = ("position", "title", "done", "done_by", "done_at", "note")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(IncidentRunbook)
class IncidentRunbookAdmin(admin.ModelAdmin):
    """Read-only: steps are ticked on the incident page or the API (onto the timeline)."""

    list_display = ("title", "incident", "started_by", "started_at", "completed_at")
    list_select_related = ("incident", "started_by")
    inlines = [IncidentRunbookStepInline]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
