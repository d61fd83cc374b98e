"""Admin for the triage tree: versions are edited as drafts, validated, then published.

A published (or retired) version is read-only: walks point at its nodes. To change the tree,
"Create a draft from this version", edit the draft (nodes, answers, next steps), then "Publish".
Publishing refuses a tree that fails validation (one root, no orphans, no cycles, questions
with answers, outcomes as leaves); saving a draft refuses cycles and answers out of outcomes
at once and lists the other problems as a warning. Walks are shown read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.core.exceptions import ValidationError

from config.kernel.admin import ReadOnlyAdminMixin, ReadOnlyInline

from ..services import IncidentError
from . import services
from .models import (
    NodeKind,
    TriageAnswer,
    TriageNextStep,
    TriageNode,
    TriageStep,
    TriageTree,
    TriageWalk,
)
from .validation import find_cycle, validate_tree


class _FrozenUnlessDraft:
    """Inline/admin mixin: read-only unless the tree version is a draft."""

    def _tree(self, obj):
        if obj is None:
            return None
        if isinstance(obj, TriageTree):
            return obj
        return getattr(obj, "tree", None)

    def has_change_permission(self, request, obj=None):
        tree = self._tree(obj)
        if tree is not None and not tree.is_editable:
            return False
        return super().has_change_permission(request, obj)

    def has_add_permission(self, request, obj=None):
        tree = self._tree(obj)
        if tree is not None and not tree.is_editable:
            return False
        if isinstance(self, InlineModelAdmin):
            return super().has_add_permission(request, obj)
        return super().has_add_permission(request)

    def has_delete_permission(self, request, obj=None):
        tree = self._tree(obj)
        if tree is not None and not tree.is_editable:
            return False
        return super().has_delete_permission(request, obj)


class NodeInline(_FrozenUnlessDraft, admin.TabularInline):
    model = TriageNode
    fields = ("position", "chart_ref", "key", "kind", "text", "severity", "incident_kind")
    extra = 0
    show_change_link = True  # help text and next steps are edited on the node's own page


class AnswerFormSet(forms.BaseInlineFormSet):
    """Refuses at once what can never be right: cycles, answers out of an outcome, self-loops."""

    def clean(self):
        super().clean()
        tree = self.instance
        edges: dict[str, list[str]] = {}
        kinds = {n.pk: n for n in TriageNode.objects.filter(tree=tree)}
        for form in self.forms:
            data = getattr(form, "cleaned_data", None) or {}
            if not data or data.get("DELETE"):
                continue
            source, target = data.get("from_node"), data.get("to_node")
            if source is None or target is None:
                continue
            if source.tree_id != tree.pk or target.tree_id != tree.pk:
                form.add_error("to_node", "Both nodes must belong to this version.")
                continue
            if source.pk == target.pk:
                form.add_error("to_node", "An answer cannot lead back to its own node.")
                continue
            if kinds[source.pk].kind == NodeKind.OUTCOME:
                form.add_error("from_node", "Outcomes are leaves: an outcome has no answers.")
                continue
            edges.setdefault(source.key, []).append(target.key)
        cycle = find_cycle(edges)
        if cycle:
            raise ValidationError(f"These answers form a cycle: {' -> '.join(cycle)}.")


class AnswerInline(_FrozenUnlessDraft, admin.TabularInline):
    model = TriageAnswer
    formset = AnswerFormSet
    fk_name = "tree"
    fields = ("from_node", "position", "key", "label", "to_node")
    extra = 0

    def get_formset(self, request, obj=None, **kwargs):
        self._parent_tree = obj
        return super().get_formset(request, obj, **kwargs)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name in ("from_node", "to_node"):
            tree = getattr(self, "_parent_tree", None)
            kwargs["queryset"] = (
                TriageNode.objects.filter(tree=tree) if tree else TriageNode.objects.none()
            )
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


@admin.register(TriageTree)
class TriageTreeAdmin(_FrozenUnlessDraft, admin.ModelAdmin):
    list_display = ("version", "title", "status", "published_at", "based_on")
    list_filter = ("status",)
    fields = ("version", "title", "status", "notes", "based_on", "published_at", "problems")
    readonly_fields = ("version", "status", "based_on", "published_at", "problems")
    inlines = [NodeInline, AnswerInline]
    actions = ["make_draft", "publish", "validate"]

    def _tree(self, obj):
        return obj

    def has_add_permission(self, request, obj=None):
        return False  # new versions come from "Create a draft from this version"

    @admin.display(description="validation")
    def problems(self, obj):
        found = validate_tree(obj) if obj and obj.pk else []
        return "; ".join(p.message for p in found) or "No problems: this version can be published."

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        found = validate_tree(form.instance)
        if found:
            messages.warning(
                request,
                "Saved as a draft; before it can be published: "
                + " ".join(p.message for p in found),
            )

    @admin.action(description="Create a draft from the selected version", permissions=["change"])
    def make_draft(self, request, queryset):
        for tree in queryset:
            draft = services.tree_draft_from(tree_id=tree.pk, actor=request.user)
            messages.success(request, f"Draft v{draft.version} created from v{tree.version}.")

    @admin.action(
        description="Publish the selected draft (the current version is retired)",
        permissions=["change"],
    )
    def publish(self, request, queryset):
        if queryset.count() != 1:
            messages.error(request, "Publish one draft at a time.")
            return
        tree = queryset.get()
        try:
            services.tree_publish(tree_id=tree.pk, actor=request.user)
        except IncidentError as exc:
            messages.error(request, str(exc))
            return
        messages.success(request, f"Version {tree.version} is now the triage tree.")

    @admin.action(description="Validate the selected versions", permissions=["view"])
    def validate(self, request, queryset):
        for tree in queryset:
            found = validate_tree(tree)
            if found:
                messages.warning(request, f"v{tree.version}: " + " ".join(p.message for p in found))
            else:
                messages.success(request, f"v{tree.version}: no problems.")


class NextStepInline(_FrozenUnlessDraft, admin.TabularInline):
    model = TriageNextStep
    fields = ("position", "text", "action")
    extra = 0


class NodeAdminForm(forms.ModelForm):
    class Meta:
        model = TriageNode
        fields = (
            "tree",
            "position",
            "chart_ref",
            "key",
            "kind",
            "text",
            "help",
            "severity",
            "incident_kind",
        )

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if self.instance.pk and kind == NodeKind.OUTCOME and self.instance.answers.exists():
            raise ValidationError("Outcomes are leaves: remove this node's answers first.")
        return data


@admin.register(TriageNode)
class TriageNodeAdmin(_FrozenUnlessDraft, admin.ModelAdmin):
    form = NodeAdminForm
    list_display = ("__str__", "key", "kind", "severity", "tree")
    list_filter = ("tree", "kind")
    search_fields = ("key", "text")
    fields = NodeAdminForm.Meta.fields
    inlines = [NextStepInline]

    def get_readonly_fields(self, request, obj=None):
        return ("tree",) if obj else ()

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "tree":
            kwargs["queryset"] = TriageTree.objects.filter(status="draft")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class StepInline(ReadOnlyInline):
    model = TriageStep
    fields = (
        "position",
        "question_text",
        "answer_label",
        "answered_by",
        "answered_at",
        "suggested_answer_key",
        "suggestion",
        "suggestion_evidence",
        "withdrawn_at",
        "withdrawn_by",
    )
    readonly_fields = fields


@admin.register(TriageWalk)
class TriageWalkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "id",
        "incident",
        "tree",
        "status",
        "started_by",
        "started_at",
        "outcome_text",
        "proposed_severity",
    )
    list_filter = ("status", "proposed_severity")
    list_select_related = ("incident", "tree", "started_by")
    inlines = [StepInline]
    readonly_fields = (
        "incident",
        "tree",
        "status",
        "current_node",
        "started_at",
        "started_by",
        "completed_at",
        "ended_at",
        "ended_by",
        "outcome_node",
        "outcome_text",
        "proposed_severity",
        "proposed_kind",
        "severity_applied_at",
        "severity_applied_by",
        "kind_applied_at",
        "kind_applied_by",
    )
    exclude = ("start_path",)
