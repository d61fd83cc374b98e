"""Admin for integrity checks (validated like the API; a "run now" action) and runs with their
results inline, read-only (runs are evidence). Imported by diagnostics/admin.py."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from config.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline
from diagnostics.integrity.models import IntegrityCheck, IntegrityResult, IntegrityRun

from ..services import DiagnosticsError
from . import services


class IntegrityCheckForm(forms.ModelForm):
    class Meta:
        model = IntegrityCheck
        fields = ["target", *services.CHECK_FIELDS]

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        probe = IntegrityCheck(pk=self.instance.pk)
        for name in ("target", *services.CHECK_FIELDS):
            if name in data:
                setattr(probe, name, data[name])
        try:
            services.validate_check(probe)
        except DiagnosticsError as exc:
            field = exc.field if exc.field in self.fields else None
            self.add_error(field, str(exc))
        return data


@admin.register(IntegrityCheck)
class IntegrityCheckAdmin(admin.ModelAdmin):
    form = IntegrityCheckForm
    list_display = ["name", "target", "kind", "table_display", "severity", "enabled", "gate"]
    list_filter = ["target", "kind", "severity", "enabled"]
    search_fields = ["name", "table_name", "description"]
    actions = ["run_now"]
    readonly_fields = ["created_by", "created_at", "updated_at"]

    @admin.display(description="Table")
    def table_display(self, obj):
        return f"{obj.schema_name}.{obj.table_name}" if obj.table_name else "(query)"

    @admin.display(description="Action item gate key")
    def gate(self, obj):
        return obj.gate_key

    def save_model(self, request, obj, form, change):
        values = {k: form.cleaned_data[k] for k in services.CHECK_FIELDS if k in form.cleaned_data}
        if change:
            saved = services.integrity_check_update(check_id=obj.pk, actor=request.user, **values)
        else:
            saved = services.integrity_check_create(
                target_id=form.cleaned_data["target"].pk, actor=request.user, **values
            )
        obj.pk = saved.pk
        obj.refresh_from_db()

    def delete_model(self, request, obj):
        services.integrity_check_delete(check_id=obj.pk, actor=request.user)

    @admin.action(description="Run the selected checks now")
    def run_now(self, request, queryset):
        by_target: dict[int, list[int]] = {}
        for check in queryset:
            by_target.setdefault(check.target_id, []).append(check.pk)
        for target_id, ids in by_target.items():
            try:
                run = services.integrity_run_start(
                    target_id=target_id, check_ids=ids, requested_by=request.user
                )
            except DiagnosticsError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            url = reverse("integrity:integrity-run", kwargs={"run_id": run.pk})
            self.message_user(
                request,
                format_html('Integrity run <a href="{}">#{}</a> queued.', url, run.pk),
                messages.SUCCESS,
            )


class IntegrityResultInline(ReadOnlyInline):
    model = IntegrityResult
    fields = ["check_name", "kind", "status", "count", "expected", "sample", "duration_ms", "error"]
    readonly_fields = fields


@admin.register(IntegrityRun)
class IntegrityRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "target",
        "purpose",
        "incident",
        "status",
        "checks_total",
        "checks_violated",
        "checks_errored",
        "queued_at",
    ]
    list_filter = ["purpose", "status", "target"]
    inlines = [IntegrityResultInline]
    readonly_fields = [*IntegrityRun.RUN_FIELDS, *IntegrityRun.OUTCOME_FIELDS, "results_page"]
    exclude = ["deadline", "requeues", "celery_task_id", "execution_token"]

    @admin.display(description="Results page")
    def results_page(self, obj):
        url = reverse("integrity:integrity-run", kwargs={"run_id": obj.pk})
        return format_html('<a href="{}">{}</a>', url, url)
