"""API tokens in the admin: name, prefix, dates and state, never the secret. Adding one shows
its secret once, on the page that answers the add (it is not stored, so it cannot be shown
again); "Revoke" stops tokens working."""

from django.contrib import admin, messages
from django.template.response import TemplateResponse

from . import services
from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "prefix", "created_at", "expires_at", "last_used_at", "state"]
    list_filter = ["revoked_at", "expires_at"]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["user", "name", "expires_at"]
        return ["user", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return ["user", "prefix", "created_at", "last_used_at", "revoked_at"]

    @admin.display(description="state")
    def state(self, obj):
        if obj.revoked_at:
            return "revoked"
        return "expired" if obj.is_expired else "active"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        token, secret = services.token_issue(
            user=obj.user, name=obj.name, expires_at=obj.expires_at
        )
        obj.pk = token.pk
        obj._state.adding = False
        # Handed to response_add only, in this request's memory: never stored or logged.
        request._quell_new_token_secret = secret

    def response_add(self, request, obj, post_url_continue=None):
        secret = getattr(request, "_quell_new_token_secret", None)
        if secret is None:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "token": obj,
            "secret": secret,
            "title": "API token created",
        }
        response = TemplateResponse(request, "admin/accounts/apitoken/created.html", context)
        # The page holds a secret: no cache may keep it.
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request, queryset):
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            services.token_revoke(token=token)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)
