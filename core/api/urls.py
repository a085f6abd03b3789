"""Routes of /api/v1/admin/settings (the organisation singleton)."""

from django.urls import path

from core.api import views

settings_view = views.OrganizationSettingsViewSet.as_view(
    {"get": "retrieve", "patch": "partial_update"}
)

urlpatterns = [path("admin/settings", settings_view, name="admin-settings")]
