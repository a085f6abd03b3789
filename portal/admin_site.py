"""The platform-engineer console: the Django admin, titled with the organisation's name."""

from __future__ import annotations

from django.contrib import admin
from django.db.utils import DatabaseError


class EnclaveAdminSite(admin.AdminSite):
    """Admin site reachable only by active `admin`-role members (see `User.is_staff`)."""

    site_url = "/"
    enable_nav_sidebar = True

    def each_context(self, request):
        context = super().each_context(request)
        name = self._portal_name()
        context.update(site_header=f"{name} console", site_title=name, index_title="Administration")
        return context

    @staticmethod
    def _portal_name() -> str:
        from portal.models import OrganizationSettings

        try:
            return OrganizationSettings.load().portal_name
        except DatabaseError:
            return "Enclave"
