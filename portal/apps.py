from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class PortalConfig(AppConfig):
    """Organisation-wide pieces: settings singleton, crypto, API plumbing, admin site."""

    name = "portal"
    verbose_name = "Organisation"


class PortalAdminConfig(AdminConfig):
    """The Django admin, replaced by the platform-engineer console of `portal.admin_site`."""

    default_site = "portal.admin_site.EnclaveAdminSite"
