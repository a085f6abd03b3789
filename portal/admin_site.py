"""The platform-engineer console: the Django admin, titled with the organisation's name."""

from __future__ import annotations

from django.contrib import admin
from django.db.utils import DatabaseError


class EnclaveAdminSite(admin.AdminSite):
    """Admin site reachable only by active `admin`-role members (see `User.is_staff`)."""

    site_url = "/"
    enable_nav_sidebar = True

    def get_urls(self):
        from django.urls import path

        from workspaces.admin_views import workspaces_console

        extra = [
            path(
                "workspaces/live/",
                self.admin_view(lambda request: workspaces_console(request, self)),
                name="workspaces_console",
            )
        ]
        return extra + super().get_urls()

    def get_app_list(self, request, app_label=None):
        """Adds the live workspaces page (not a model: workspaces live in the data plane)."""
        from django.urls import reverse

        apps = super().get_app_list(request, app_label)
        for app in apps:
            if app["app_label"] == "workspaces":
                app["models"].insert(
                    0,
                    {
                        "name": "All workspaces (live)",
                        "object_name": "LiveWorkspace",
                        "admin_url": reverse("admin:workspaces_console"),
                        "add_url": None,
                        "view_only": True,
                        "perms": {"view": True},
                    },
                )
        return apps

    def each_context(self, request):
        context = super().each_context(request)
        name = self._portal_name()
        context.update(site_header=f"{name} console", site_title=name, index_title="Administration")
        return context

    @staticmethod
    def _portal_name() -> str:
        from core.models import OrganizationSettings

        try:
            return OrganizationSettings.load().portal_name
        except DatabaseError:
            return "Enclave"
