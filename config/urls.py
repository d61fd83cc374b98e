"""Quell's URL map. Each app owns its modules: `<app>/api/urls.py` (REST, under /api/v1/) and
`<app>/urls.py` (web pages); this file only mounts them."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

api_v1 = [
    path("", include("incidents.api.urls")),
    path("", include("diagnostics.api.urls")),
    path("", include("comms.api.urls")),
    path("", include("postmortems.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("accounts/", include("django.contrib.auth.urls")),
    # Web pages. comms.urls holds the public status page (/status/).
    path("", include("comms.urls")),
    path("", include("diagnostics.urls")),
    path("", include("postmortems.urls")),
    path("", include("incidents.urls")),
]

handler404 = "config.http_errors.not_found"
