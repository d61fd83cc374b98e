"""Admin pieces every app shares."""

from django.contrib import admin


class ReadOnlyInline(admin.TabularInline):
    """Rows shown as a record (history, results): nothing is added, changed or deleted here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
