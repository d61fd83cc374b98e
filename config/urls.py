"""Quell's URL map. Each app owns its modules: `<app>/api/urls.py` (REST, under /api/v1/) and
`<app>/urls.py` (web pages); this file only mounts them."""

from csp.constants import SELF, UNSAFE_INLINE
from csp.decorators import csp_replace
from django.contrib import admin
from django.http import HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from config.accounts.views import RateLimitedPasswordResetView


def favicon(request):
    return HttpResponsePermanentRedirect(static("quell/favicon.svg"))


# Swagger UI's page and its start-up script are separate requests (the split view), so the page
# runs no inline script; Swagger UI does set inline styles while it renders, so this page alone
# allows them.
api_docs = csp_replace({"style-src": [SELF, UNSAFE_INLINE]})(
    SpectacularSwaggerSplitView.as_view(url_name="api-schema")
)

api_v1 = [
    path("", include("incidents.api.urls")),
    path("", include("diagnostics.api.urls")),
    path("", include("diagnostics.integrity.api.urls")),
    path("", include("diagnostics.remediation.api.urls")),
    path("", include("diagnostics.detection.api.urls")),
    path("", include("comms.api.urls")),
    path("", include("postmortems.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", api_docs, name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # Django's sign-in pages; the password reset form is limited per address and per account.
    path(
        "accounts/password_reset/",
        RateLimitedPasswordResetView.as_view(),
        name="password_reset",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    # Browsers and tools ask for /favicon.ico whatever the page says: answered without a page
    # (a 404 page would set a CSRF cookie racing the one of the page being loaded).
    path("favicon.ico", favicon, name="favicon"),
    # Web pages. comms.urls holds the public status page (/status/).
    path("", include("comms.urls")),
    path("", include("diagnostics.urls")),
    path("", include("diagnostics.integrity.urls")),
    path("", include("diagnostics.detection.urls")),
    path("", include("diagnostics.remediation.urls")),
    path("", include("postmortems.urls")),
    path("", include("incidents.urls")),
]

handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
