"""URL map: each app owns its API under /api/v1/, the project mounts it."""

from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal import views

api_v1 = [
    path("", include("core.api.urls")),
    path("", include("accounts.api.urls")),
    path("", include("clusters.api.urls")),
    path("", include("security_center.api.urls")),
    path("", include("blueprints.api.urls")),
    path("", include("workspaces.api.urls")),
    path("", include("publishing.api.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    re_path(r"^(?P<path>.*)$", views.api_not_found),  # last: JSON 404, never Django's page
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("", include("accounts.urls")),
    path("", include("workspaces.urls")),
    path("", include("relay.urls")),
]

handler400 = "portal.views.bad_request"
handler500 = "portal.views.server_error"
