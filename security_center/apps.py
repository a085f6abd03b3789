from django.apps import AppConfig


class SecurityCenterConfig(AppConfig):
    """IP firewall, connection audit and the tamper-evident audit log. It installs itself
    as the accounts' way to end a suspended member's live connections."""

    name = "security_center"
    verbose_name = "Security centre"

    def ready(self) -> None:
        from accounts.access import register_access_ender
        from security_center.services import connections_end_for_member

        register_access_ender(connections_end_for_member)
