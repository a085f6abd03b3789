from django.apps import AppConfig


class SecurityCenterConfig(AppConfig):
    """IP firewall, connection audit and the tamper-evident audit log."""

    name = "security_center"
    verbose_name = "Security centre"
