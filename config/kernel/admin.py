"""Admin pieces every app shares."""

from django.contrib import admin


class ReadOnlyAdminMixin:
    """A model kept as a record (runs, history, state written by services): listed and shown,
    never added, changed or deleted in the admin. Put it first among a ModelAdmin's bases."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(ReadOnlyAdminMixin, admin.TabularInline):
    """Rows shown as a record (history, results): nothing is added, changed or deleted here."""

    extra = 0
    can_delete = False
