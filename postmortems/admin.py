"""Admin: read-mostly views for support. Authoring happens in the web pages, where versions,
timeline events and the incident's closing are handled by the services."""

from django.contrib import admin

from .models import ActionItem, Postmortem, PostmortemRevision, Review


class ActionItemInline(admin.TabularInline):
    model = ActionItem
    extra = 0
    fields = ("title", "category", "owner", "due_date", "status", "tracker_url")
    readonly_fields = fields
    can_delete = False
    show_change_link = True


class ReviewInline(admin.TabularInline):
    model = Review
    extra = 0
    fields = ("status", "starts_at", "duration_minutes", "sequence", "uid")
    readonly_fields = fields
    can_delete = False


@admin.register(Postmortem)
class PostmortemAdmin(admin.ModelAdmin):
    list_display = ("id", "incident", "title", "status", "version", "review_due_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("title", "incident__title", "summary", "root_cause")
    raw_id_fields = ("incident",)
    # Content, status and versions change only through the services (the web pages and API).
    readonly_fields = [f.name for f in Postmortem._meta.fields]
    inlines = [ActionItemInline, ReviewInline]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(PostmortemRevision)
class PostmortemRevisionAdmin(admin.ModelAdmin):
    list_display = ("postmortem", "version", "saved_at", "saved_by", "autosave")
    readonly_fields = [f.name for f in PostmortemRevision._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ActionItem)
class ActionItemAdmin(admin.ModelAdmin):
    list_display = ("title", "postmortem", "category", "owner", "due_date", "status")
    list_filter = ("status", "category")
    search_fields = ("title", "description")
    readonly_fields = [f.name for f in ActionItem._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("postmortem", "status", "starts_at", "duration_minutes", "sequence")
    list_filter = ("status",)
    readonly_fields = [f.name for f in Review._meta.fields]

    def has_add_permission(self, request):
        return False
