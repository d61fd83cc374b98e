"""Admin for remediation records (read-only: they are the audit trail) and runbooks
(definitions are edited here, steps inline; started runbooks are read)."""

from __future__ import annotations

from django.contrib import admin

from config.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline

from .models import (
    IncidentRunbook,
    IncidentRunbookStep,
    RemediationAction,
    Runbook,
    RunbookStep,
)


@admin.register(RemediationAction)
class RemediationActionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # Remediation happens through the preview and confirmation (panel or API), never here.
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


class IncidentRunbookStepInline(ReadOnlyInline):
    model = IncidentRunbookStep
    fields = ("position", "title", "done", "done_by", "done_at", "note")


@admin.register(IncidentRunbook)
class IncidentRunbookAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: steps are ticked on the incident page or the API (onto the timeline)."""

    list_display = ("title", "incident", "started_by", "started_at", "completed_at")
    list_select_related = ("incident", "started_by")
    inlines = [IncidentRunbookStepInline]
