"""The platform-engineer console: the Django admin, titled with the organisation's name."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.decorators import login_not_required
from django.db.utils import DatabaseError
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache


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

    @method_decorator(never_cache)
    @login_not_required
    def login(self, request, extra_context=None):
        """Django's console login, through the throttled and audited `ConsoleLoginView`."""
        from accounts.views import ConsoleLoginView

        if request.method == "GET" and self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        context = {
            **self.each_context(request),
            "title": "Log in",
            "subtitle": None,
            "app_path": request.get_full_path(),
            "username": request.user.get_username(),
        }
        if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
            context[REDIRECT_FIELD_NAME] = reverse("admin:index", current_app=self.name)
        context.update(extra_context or {})
        request.current_app = self.name
        return ConsoleLoginView.as_view(extra_context=context)(request)

    def get_app_list(self, request, app_label=None):
        """Adds the live workspaces page (not a model: workspaces live in the data plane)."""
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
