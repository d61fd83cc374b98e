"""The Django admin for staff: browse and edit incidents through the same services as the API.

Nothing here writes a row directly. Details are saved through incident_update, new incidents
through incident_declare, roles through role_assign/role_relieve and status through
incident_transition (admin actions), so every change lands on the timeline. Status, severity
and lifecycle times are read-only on the form. Nobody deletes incidents, assignments or
timeline events here.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Prefetch
from django.utils.html import format_html_join
from django.utils.text import Truncator

from config.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline
from config.kernel.permissions import RESPONDER, user_has_role
from incidents.permissions import user_commands_incident

from . import services
from .models import (
    ASSESSMENT_FIELDS,
    LIFECYCLE_TIMES,
    OPEN_STATUSES,
    Incident,
    ParkedTask,
    ResponderAssignment,
    ResponderRole,
    Status,
    TimelineEvent,
)
from .selectors import active_assignments_queryset, incident_missing_roles, incident_search
from .severity import SEVERITY_DEFINITIONS

User = get_user_model()


class OpenFilter(admin.SimpleListFilter):
    title = "open"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return (("yes", "Open"), ("no", "Resolved or closed"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(status__in=OPEN_STATUSES)
        if self.value() == "no":
            return queryset.exclude(status__in=OPEN_STATUSES)
        return queryset


class AssignmentHistoryInline(ReadOnlyInline):
    """Every assignment, current and relieved: read-only history."""

    model = ResponderAssignment
    verbose_name = "role assignment"
    verbose_name_plural = "Roles (current and past; relieve them under Responder assignments)"
    fields = ("role_label", "user", "assigned_at", "assigned_by", "relieved_at", "relieved_by")
    readonly_fields = fields
    show_change_link = False

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("user", "assigned_by", "relieved_by")
            .order_by("relieved_at", "assigned_at")  # current holders (NULL) sort last in PG
        )

    @admin.display(description="role")
    def role_label(self, obj):
        return obj.role_label


class AssignRoleForm(forms.ModelForm):
    class Meta:
        model = ResponderAssignment
        fields = ("role", "role_name", "user")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(is_active=True).order_by("username")
        self.fields["role_name"].help_text = "Only for 'Other' (for example 'Scribe')."


class AssignRoleInline(admin.TabularInline):
    """Empty rows to assign roles; saved through role_assign (which relieves the holder)."""

    model = ResponderAssignment
    form = AssignRoleForm
    verbose_name = "role to assign"
    verbose_name_plural = "Assign roles (replaces the current holder; recorded on the timeline)"
    extra = 1
    max_num = len(ResponderRole.choices)
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).none()

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        field = super().formfield_for_dbfield(db_field, request, **kwargs)
        if db_field.name == "user" and hasattr(field.widget, "widget"):
            # A plain choice of user: no add/change/delete-user buttons beside a role.
            field.widget = field.widget.widget
        return field

    def has_add_permission(self, request, obj=None):
        return (
            obj is not None
            and obj.status != Status.CLOSED
            and user_has_role(request.user, RESPONDER)
        )

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class TimelineInline(ReadOnlyInline):
    model = TimelineEvent
    verbose_name_plural = "Timeline (append-only)"
    fields = ("occurred_at", "kind", "actor_display", "message", "data")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("actor").order_by("occurred_at", "id")

    @admin.display(description="actor")
    def actor_display(self, obj):
        return obj.actor_display


def _transition_action(to_status: str, *, name: str, description: str, only_from=None):
    """An admin action that moves each selected incident through incident_transition."""

    @admin.action(description=description, permissions=["transition"])
    def action(modeladmin, request, queryset):
        moved = []
        # The admin's queryset already prefetches the current role holders (IC check).
        for incident in queryset:
            if not user_commands_incident(request.user, incident):
                modeladmin.message_user(
                    request,
                    f"#{incident.pk}: only a commander or its Incident Commander may change "
                    "its status.",
                    messages.ERROR,
                )
                continue
            if only_from and incident.status != only_from:
                modeladmin.message_user(
                    request,
                    f"#{incident.pk}: only {only_from} incidents can be reopened "
                    f"(it is {incident.status}).",
                    messages.ERROR,
                )
                continue
            try:
                services.incident_transition(
                    incident_id=incident.pk,
                    to_status=to_status,
                    actor=request.user,
                    expected_status=incident.status,
                    reason="via the admin",
                )
            except services.IncidentError as exc:
                modeladmin.message_user(request, f"#{incident.pk}: {exc}", messages.ERROR)
            else:
                moved.append(f"#{incident.pk}")
        if moved:
            modeladmin.message_user(
                request, f"Moved to {to_status}: {', '.join(moved)}.", messages.SUCCESS
            )

    action.__name__ = name
    return action


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "title",
        "severity",
        "status",
        "commander",
        "missing_roles",
        "kind",
        "detection_source",
        "declared_at",
    )
    list_display_links = ("id", "title")
    list_filter = (
        OpenFilter,
        "severity",
        "status",
        "kind",
        "detection_source",
        ("declared_at", admin.DateFieldListFilter),
    )
    search_fields = ("title", "description", "channel_name", "detected_by")
    search_help_text = "Title, description, channel or detected by; '#123' finds an incident."
    date_hierarchy = "declared_at"
    list_per_page = 50
    list_select_related = ("declared_by",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    show_full_result_count = False
    inlines = (AssignmentHistoryInline, AssignRoleInline, TimelineInline)
    actions = (
        "acknowledge",
        _transition_action(
            Status.IDENTIFIED, name="mark_identified", description="Mark as identified"
        ),
        _transition_action(
            Status.MONITORING, name="mark_monitoring", description="Mark as monitoring"
        ),
        _transition_action(Status.RESOLVED, name="mark_resolved", description="Mark as resolved"),
        _transition_action(Status.CLOSED, name="mark_closed", description="Close"),
        _transition_action(
            Status.INVESTIGATING,
            name="reopen",
            description="Reopen (resolved -> investigating)",
            only_from=Status.RESOLVED,
        ),
    )

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related(
                Prefetch(
                    "assignments",
                    queryset=active_assignments_queryset(),
                    to_attr="active_assignments",
                )
            )
        )

    def get_search_results(self, request, queryset, search_term):
        return incident_search(queryset, search_term), False

    # --- columns ------------------------------------------------------------------------------

    @admin.display(description="commander")
    def commander(self, obj):
        for assignment in obj.active_assignments:
            if assignment.role == ResponderRole.INCIDENT_COMMANDER:
                return assignment.user.get_username()
        return "-"

    @admin.display(description="missing roles")
    def missing_roles(self, obj):
        missing = incident_missing_roles(obj)
        return ", ".join(ResponderRole(r).label for r in missing) or "-"

    @admin.display(description="severity definitions")
    def severity_help(self, obj):
        return format_html_join(
            "", "<p><b>{}</b>: {}</p>", ((k, v) for k, v in SEVERITY_DEFINITIONS.items())
        )

    @admin.display(description="allowed transitions")
    def allowed_transitions_display(self, obj):
        return ", ".join(services.allowed_transitions(obj.status)) or "none (closed)"

    # --- form ---------------------------------------------------------------------------------

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return (
                (
                    None,
                    {
                        "fields": (
                            "title",
                            "severity",
                            "severity_help",
                            "kind",
                            "description",
                            "detection_source",
                            "detected_by",
                        )
                    },
                ),
                ("Initial assessment", {"fields": ASSESSMENT_FIELDS}),
                ("Channels", {"fields": ("bridge_url",)}),
            )
        return (
            (
                None,
                {
                    "fields": (
                        "title",
                        ("severity", "status"),
                        "allowed_transitions_display",
                        "kind",
                        "description",
                        ("detection_source", "detected_by"),
                        "declared_by",
                    ),
                    "description": "Status and severity change through the actions on the "
                    "incident list (or the API); every change is recorded on the timeline.",
                },
            ),
            ("Initial assessment", {"fields": ASSESSMENT_FIELDS}),
            ("Channels", {"fields": ("channel_name", "bridge_url", "missing_roles")}),
            ("Lifecycle", {"fields": LIFECYCLE_TIMES}),
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ("severity_help",)
        readonly = [
            "severity",
            "status",
            "allowed_transitions_display",
            "detection_source",
            "declared_by",
            "channel_name",
            "missing_roles",
            *LIFECYCLE_TIMES,
        ]
        if obj.status == Status.CLOSED:
            # Closed incidents are final; notes go on the timeline instead.
            readonly += [f for f in services.EDITABLE_FIELDS if f not in readonly]
        return readonly

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        if not change:
            created = services.incident_declare(
                actor=request.user,
                title=data["title"],
                severity=data["severity"],
                kind=data["kind"],
                description=data.get("description", ""),
                detection_source=data["detection_source"],
                detected_by=data.get("detected_by", ""),
                **{f: data[f] for f in (*ASSESSMENT_FIELDS, "bridge_url") if f in data},
            )
            # The admin goes on to log and redirect with `obj`: make it the declared row.
            for field in Incident._meta.concrete_fields:
                setattr(obj, field.attname, getattr(created, field.attname))
            obj._state.adding = False
            obj._state.db = created._state.db
            return
        changes = {
            name: data[name] for name in form.changed_data if name in services.EDITABLE_FIELDS
        }
        if changes:
            services.incident_update(incident_id=obj.pk, actor=request.user, **changes)

    def save_formset(self, request, form, formset, change):
        # Nothing is saved by the formsets themselves (the admin's change message reads these).
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if not issubclass(formset.form, AssignRoleForm):
            return  # the other inlines are read-only
        for row in formset.forms:
            if not row.has_changed() or not row.is_valid():
                continue
            try:
                services.role_assign(
                    incident_id=form.instance.pk,
                    role=row.cleaned_data["role"],
                    role_name=row.cleaned_data.get("role_name", ""),
                    user=row.cleaned_data["user"],
                    actor=request.user,
                )
            except (services.IncidentError, PermissionDenied) as exc:
                # Same rule as the API and the pages: services.role_assign decides who may grant.
                self.message_user(request, f"Role not assigned: {exc}", messages.ERROR)

    # --- permissions --------------------------------------------------------------------------

    def has_delete_permission(self, request, obj=None):
        return False

    def has_transition_permission(self, request):
        # Per-incident rights (commander group or the incident's IC) are checked in the action.
        return user_has_role(request.user, RESPONDER)

    def has_acknowledge_permission(self, request):
        return user_has_role(request.user, RESPONDER)

    @admin.action(description="Acknowledge", permissions=["acknowledge"])
    def acknowledge(self, request, queryset):
        done = []
        for incident in queryset:
            try:
                services.incident_acknowledge(incident_id=incident.pk, actor=request.user)
            except services.IncidentError as exc:
                self.message_user(request, f"#{incident.pk}: {exc}", messages.ERROR)
            else:
                done.append(f"#{incident.pk}")
        if done:
            self.message_user(request, f"Acknowledged: {', '.join(done)}.", messages.SUCCESS)


# Read-only: roles are assigned on the incident's page, through role_assign.
@admin.register(ResponderAssignment)
class ResponderAssignmentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("incident", "role_display", "user", "assigned_at", "relieved_at", "current")
    list_filter = ("role", ("relieved_at", admin.EmptyFieldListFilter))
    search_fields = ("user__username", "role_name", "incident__title")
    list_select_related = ("incident", "user")
    actions = ("relieve",)

    @admin.display(description="role")
    def role_display(self, obj):
        return obj.role_label

    @admin.display(description="current", boolean=True)
    def current(self, obj):
        return obj.is_active

    def has_relieve_permission(self, request):
        return user_has_role(request.user, RESPONDER)

    @admin.action(description="Relieve (no successor)", permissions=["relieve"])
    def relieve(self, request, queryset):
        done = []
        for assignment in queryset:
            try:
                services.role_relieve(assignment_id=assignment.pk, actor=request.user)
            except (services.IncidentError, PermissionDenied) as exc:
                self.message_user(request, f"{assignment}: {exc}", messages.ERROR)
            else:
                done.append(str(assignment))
        if done:
            self.message_user(request, f"Relieved: {'; '.join(done)}.", messages.SUCCESS)


@admin.register(TimelineEvent)
class TimelineEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("occurred_at", "incident", "kind", "actor_display", "short_message")
    list_filter = ("kind", ("occurred_at", admin.DateFieldListFilter), "actor_label")
    search_fields = ("message", "incident__title")
    list_select_related = ("incident", "actor")
    date_hierarchy = "occurred_at"
    list_per_page = 100
    show_full_result_count = False
    readonly_fields = (
        "incident",
        "occurred_at",
        "recorded_at",
        "kind",
        "actor",
        "actor_label",
        "message",
        "data",
    )

    @admin.display(description="actor")
    def actor_display(self, obj):
        return obj.actor_display

    @admin.display(description="message")
    def short_message(self, obj):
        return Truncator(obj.message).chars(120)


# The triage tree's admin (incidents.triage.admin) registers its own models.
@admin.register(ParkedTask)
class ParkedTaskAdmin(admin.ModelAdmin):
    """Tasks waiting for the broker (incidents.dispatch): read-only, sent again by beat."""

    list_display = ("task", "args", "parked_at", "attempts", "last_error")
    list_filter = ("task",)
    readonly_fields = ("task", "args", "kwargs", "task_id", "eta", "parked_at", "attempts",
                       "last_error")  # fmt: skip

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


from .triage import admin as triage_admin  # noqa: E402, F401
