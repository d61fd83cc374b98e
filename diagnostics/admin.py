"""Admin for targets (credentials write-only; test connection and run diagnostics actions) and
runs with their results (read-only: runs are evidence)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.utils.html import format_html

from config.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline

from . import services
from .models import CheckResult, DiagnosticRun, IncidentTarget, TargetDatabase, Trigger


class _DryRun(Exception):
    """Rolls back a validation write (control flow, not an error)."""


# The model fields the form edits (the admin's fieldsets add the write-only extras).
# Tags have a field of their own on the form (comma-separated).
TARGET_FORM_FIELDS = [f for f in services.TARGET_FIELDS if f not in ("tags", "aliases")]


class TargetDatabaseForm(forms.ModelForm):
    """Password and DSN are write-only: the form never renders a stored value."""

    new_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored password.",
    )
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)
    new_dsn = forms.CharField(
        label="DSN",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="A whole libpq connection string or URI instead of the settings above; "
        "leave empty to keep the stored one.",
    )
    clear_dsn = forms.BooleanField(label="Remove the stored DSN", required=False)
    tags_text = forms.CharField(
        label="Tags", required=False, help_text="Comma-separated, for example: eu, payments"
    )
    aliases_text = forms.CharField(
        label="Aliases",
        required=False,
        help_text="Other names alerts use for it, comma-separated: the exporter's instance "
        "label (shop-db:9187), a host alias.",
    )

    class Meta:
        model = TargetDatabase
        fields = TARGET_FORM_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["tags_text"].initial = ", ".join(self.instance.tags)
            self.fields["aliases_text"].initial = ", ".join(self.instance.aliases)

    def _post_clean(self):
        # The services validate and save; the model's own full_clean is not the authority here.
        pass

    def clean(self):
        data = super().clean()
        values = {k: data.get(k) for k in TARGET_FORM_FIELDS}
        values["tags"] = data.get("tags_text") or ""
        values["aliases"] = data.get("aliases_text") or ""
        password = None
        if data.get("clear_password"):
            password = ""
        elif data.get("new_password"):
            password = data["new_password"]
        dsn = None
        if data.get("clear_dsn"):
            dsn = ""
        elif data.get("new_dsn"):
            dsn = data["new_dsn"]
        self.service_values = {"values": values, "password": password, "dsn": dsn}
        if not self.errors:
            # Validation lives in the services: try the write and roll it back, so a refusal
            # becomes a form error on the right field instead of a server error at save time.
            try:
                with transaction.atomic():
                    self._write()
                    raise _DryRun
            except _DryRun:
                pass
            except services.DiagnosticsError as exc:
                field = {"dsn": "new_dsn", "tags": "tags_text", "aliases": "aliases_text"}.get(
                    exc.field, exc.field
                )
                self.add_error(field if field in self.fields else None, str(exc))
        return data

    def _write(self) -> TargetDatabase:
        v = self.service_values
        actor = getattr(self, "actor", None)
        if self.instance.pk:
            return services.target_update(
                target_id=self.instance.pk,
                password=v["password"],
                dsn=v["dsn"],
                actor=actor,
                **v["values"],
            )
        return services.target_create(
            **v["values"], password=v["password"] or "", dsn=v["dsn"] or "", actor=actor
        )

    def save(self, commit=True):
        """Create or update through diagnostics.services (validation, encryption)."""
        self.instance = self._write()
        return self.instance

    def save_m2m(self):
        pass


@admin.register(TargetDatabase)
class TargetDatabaseAdmin(admin.ModelAdmin):
    form = TargetDatabaseForm
    list_display = [
        "name",
        "environment",
        "address_display",
        "user",
        "tags_display",
        "enabled",
        "remediation_allowed",
        "password_status",
        "dsn_status",
    ]
    list_filter = ["environment", "enabled", "remediation_allowed", "sslmode"]
    search_fields = ["name", "host", "database", "user"]
    readonly_fields = ["password_status", "dsn_status", "created_at", "updated_at"]
    actions = ["test_connection", "run_diagnostics"]
    fieldsets = [
        (None, {"fields": ["name", "environment", "tags_text", "enabled", "remediation_allowed"]}),
        (
            "Connection",
            {"fields": ["host", "port", "database", "user", "sslmode", "options", "aliases_text"]},
        ),
        (
            "Credentials (write-only)",
            {
                "fields": [
                    "password_status",
                    "new_password",
                    "clear_password",
                    "dsn_status",
                    "new_dsn",
                    "clear_dsn",
                ]
            },
        ),
        ("Thresholds", {"fields": ["thresholds"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    @admin.display(description="Address")
    def address_display(self, obj):
        return obj.address

    @admin.display(description="Tags")
    def tags_display(self, obj):
        return ", ".join(obj.tags)

    @admin.display(description="Password")
    def password_status(self, obj):
        return "set" if obj and obj.has_password else "not set"

    @admin.display(description="DSN")
    def dsn_status(self, obj):
        return "set" if obj and obj.has_dsn else "not set"

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)

        class WithActor(form):
            actor = request.user

        return WithActor

    def save_model(self, request, obj, form, change):
        # Nothing left to do: form.save() wrote through the services in the admin's transaction.
        pass

    def delete_model(self, request, obj):
        services.target_delete(target_id=obj.pk, actor=request.user)

    @admin.action(description="Test connection")
    def test_connection(self, request, queryset):
        for target in queryset:
            result = services.target_test_connection(target_id=target.pk)
            if not result.get("reachable"):
                self.message_user(
                    request, f"{target.name}: unreachable: {result.get('error')}", messages.ERROR
                )
                continue
            text = (
                f"{target.name}: reachable in {result.get('latency_ms')} ms, "
                f"PostgreSQL {result.get('server_version')}, "
                f"{'replica (in recovery)' if result.get('in_recovery') else 'primary'}"
                + (f", platform {result['platform']}" if result.get("platform") else "")
            )
            missing = result.get("missing") or []
            if missing:
                text += ". Missing: " + "; ".join(f"{m['what']} ({m['fix']})" for m in missing)
            warnings = result.get("warnings") or []
            for warning in warnings:
                text += f". Warning: {warning['why']}: {warning['fix']}"
            level = messages.WARNING if missing or warnings else messages.SUCCESS
            self.message_user(request, text, level)

    @admin.action(description="Run diagnostics (all checks)")
    def run_diagnostics(self, request, queryset):
        started = 0
        for target in queryset:
            try:
                services.diagnostic_run_start(
                    target_id=target.pk, trigger=Trigger.MANUAL, requested_by=request.user
                )
                started += 1
            except services.DiagnosticsError as exc:
                self.message_user(request, f"{target.name}: {exc}", messages.ERROR)
        if started:
            self.message_user(request, f"Queued diagnostics on {started} target(s).")


class CheckResultInline(ReadOnlyInline):
    model = CheckResult
    fields = ["key", "title", "family", "status", "summary", "duration_ms", "error", "fix"]
    readonly_fields = fields
    show_change_link = True


@admin.register(DiagnosticRun)
class DiagnosticRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "target",
        "incident",
        "trigger",
        "status",
        "worst_status",
        "queued_at",
        "finished_at",
        "requested_by",
    ]
    list_filter = ["status", "worst_status", "trigger", "target__environment"]
    search_fields = ["target__name", "celery_task_id"]
    list_select_related = ["target", "incident", "requested_by"]
    date_hierarchy = "queued_at"
    inlines = [CheckResultInline]
    readonly_fields = [
        "target",
        "incident",
        "trigger",
        "requested_by",
        "suite",
        "worst_status",
        *DiagnosticRun.PIPELINE_FIELDS,
        "results_page",
    ]
    exclude = ["execution_token"]

    @admin.display(description="Results page")
    def results_page(self, obj):
        return format_html('<a href="{}">{}</a>', services.run_url(obj), "Open")


@admin.register(CheckResult)
class CheckResultAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["run", "key", "status", "summary", "duration_ms"]
    list_filter = ["status", "family", "key"]
    search_fields = ["key", "summary"]
    list_select_related = ["run", "run__target"]
    readonly_fields = ["run", *CheckResult.SHOWN_FIELDS]


@admin.register(IncidentTarget)
class IncidentTargetAdmin(admin.ModelAdmin):
    list_display = ["incident", "target", "added_at", "added_by"]
    list_select_related = ["incident", "target", "added_by"]
    readonly_fields = ["incident", "target", "added_at", "added_by"]

    def has_add_permission(self, request):
        # Linking starts a run and writes the timeline: use the incident page or the API.
        return False

    def has_change_permission(self, request, obj=None):
        return False
