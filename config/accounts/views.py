"""Sign-in pages' guards: the answer to a locked-out sign-in, and a rate-limited password reset."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import render

from . import ratelimit
from .client_ip import client_ip


def locked_out(request, original_response=None, credentials=None):
    """django-axes' answer (AXES_LOCKOUT_CALLABLE) after too many failed sign-ins: 429 with
    Retry-After, on Quell's own page, for the web and the admin sign-in alike."""
    cooloff_s = int(settings.AXES_COOLOFF_TIME.total_seconds())
    response = render(
        request,
        "registration/locked_out.html",
        {"cooloff_minutes": max(1, cooloff_s // 60)},
        status=429,
    )
    response["Retry-After"] = str(cooloff_s)
    return response


class RateLimitedPasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, limited per client address and per account.

    Over the address limit the page says so (429, Retry-After). Over the account limit no
    more mail is sent but the answer is the usual "check your inbox", so the page does not
    tell whether an address has an account.
    """

    def form_valid(self, form):
        retry_after = ratelimit.hit(
            "password-reset-address",
            client_ip(self.request),
            limit=settings.QUELL_PASSWORD_RESET_PER_HOUR_PER_ADDRESS,
            window_s=3600,
        )
        if retry_after is not None:
            response = render(self.request, "registration/password_reset_limited.html", status=429)
            response["Retry-After"] = str(retry_after)
            return response
        over_account_limit = ratelimit.hit(
            "password-reset-account",
            form.cleaned_data["email"].strip().lower(),
            limit=settings.QUELL_PASSWORD_RESET_PER_HOUR_PER_ACCOUNT,
            window_s=3600,
        )
        if over_account_limit is not None:
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)
