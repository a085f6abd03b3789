from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class PortalConfig(AppConfig):
    """The project itself. As an app it only carries the migrations that handed the
    organisation settings to `core` (existing databases keep their rows)."""

    name = "portal"
    verbose_name = "Portal"


class PortalAdminConfig(AdminConfig):
    """The Django admin, replaced by the platform-engineer console of `portal.admin_site`."""

    default_site = "portal.admin_site.EnclaveAdminSite"
